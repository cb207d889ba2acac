"""Sensors over the lake's Delta tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator


class DeltaTableSensor(BaseSensorOperator):
    """Waits until the Delta table at ``table_path`` exists and its version is at least
    ``min_version`` (both templated), so a scheduled run on a home nobody has bootstrapped yet,
    or before the data it needs has landed, waits (then, with ``soft_fail``, skips) instead of
    failing. Reads only the Delta log (delta-rs), never the data; pushes the version it saw."""

    template_fields: Sequence[str] = ("table_path", "min_version")

    def __init__(self, *, table_path: str, min_version: int | str = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table_path = table_path
        self.min_version = min_version

    def poke(self, context: Any) -> bool:

        from lookalike.catalog.table import table_version

        version = table_version(self.table_path)
        if version is None:
            self.log.info("no Delta table at %s yet", self.table_path)
            return False
        wanted = int(self.min_version)
        self.log.info("%s is at version %s (waiting for >= %s)", self.table_path, version, wanted)
        if version < wanted:
            return False
        context["ti"].xcom_push(key="delta_version", value=version)
        return True
