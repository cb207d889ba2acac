"""Airflow pieces the providers do not offer (importable from DAGs: Airflow puts `plugins/` on
the path)."""
