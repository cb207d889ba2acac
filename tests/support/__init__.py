"""Reusable test fakes, builders and harnesses: in-memory service fakes, image bytes, landed
photos, a local Airflow environment, a Spark standalone cluster (bench/pipeline.py shares the
Airflow environment and the landed photos)."""
