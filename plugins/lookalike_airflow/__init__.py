"""Airflow pieces the providers do not offer (importable from DAGs: Airflow puts `plugins/` on
the path), and the plugin that registers this package's timetable with Airflow (the scheduler
and dag-processor only deserialize custom timetables a plugin registered)."""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

# The package path, not this file's: Airflow loads each file of plugins/ under its bare name
# (this one as `__init__`), but DAG files use `lookalike_airflow.timetables`, and a timetable
# is looked up by its class's import path.
from lookalike_airflow.timetables import OnTimeCron


class LookalikePlugin(AirflowPlugin):
    """Registers `OnTimeCron` (the scheduled DAGs' timetable)."""

    name = "lookalike"
    timetables: ClassVar[list[type]] = [OnTimeCron]
