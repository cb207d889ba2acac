"""The plugins: the Delta table sensor against real Delta tables (delta-rs, no Spark)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_delta_table_sensor_waits_for_the_table_and_the_version(tmp_path: Path):
    from deltalake import write_deltalake
    from lookalike_airflow.sensors import DeltaTableSensor

    table = tmp_path / "lake" / "t"
    sensor = DeltaTableSensor(task_id="wait", table_path=str(table), min_version=1)
    ti = _TI()
    context = {"ti": ti}
    assert sensor.poke(context) is False  # no table yet
    write_deltalake(str(table), pa.table({"x": [1]}))
    assert sensor.poke(context) is False  # version 0 < 1
    write_deltalake(str(table), pa.table({"x": [2]}), mode="append")
    assert sensor.poke(context) is True and ti.pushed == {"delta_version": 1}
    assert DeltaTableSensor.template_fields == ("table_path", "min_version")


def test_train_dag_waits_for_the_catalogue_and_skips_softly(dagbag):
    sensor = dagbag.dags["lookalike_train_and_promote"].get_task("catalogue_ready")
    assert sensor.soft_fail and sensor.mode == "reschedule" and sensor.retries >= 1
    assert sensor.table_path.endswith("lake/catalog")
