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


def test_the_plugin_registers_the_timetable_under_the_path_dag_files_import():
    """The scheduler and dag-processor deserialize a custom timetable only through a plugin,
    looked up by the class's import path; Airflow loads `plugins/lookalike_airflow/__init__.py`
    as a bare `__init__` module, so the plugin must hand over the package's class."""
    from airflow import plugins_manager
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from lookalike_airflow.timetables import OnTimeCron

    registered = plugins_manager.get_timetables_plugins()
    assert registered["lookalike_airflow.timetables.OnTimeCron"] is OnTimeCron
    encoded = encode_timetable(OnTimeCron("0 4 * * 0"))
    assert encoded["__type"] == "lookalike_airflow.timetables.OnTimeCron"
    assert decode_timetable(encoded) == OnTimeCron("0 4 * * 0")
