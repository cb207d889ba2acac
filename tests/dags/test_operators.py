"""The operator factory: keyword arguments as a Spark job's flags, upstream task outputs
(XComArgs) as arguments resolved when the task runs, and the DAGs' Spark command lines."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.builders import REPO

RUN_ID = "manual__2026-01-01T00:00:00+00:00"

#: What the upstream tasks returned, as a fake task instance hands them out.
XCOMS = {
    "record_catalogue_version": 7,
    "best_config": "/store/configs/best.json",
    "evaluate": {"decision": {"challenger_version": "12", "promote": True}},
}


class _TI:
    """Just what resolving an XComArg asks of a task instance: ``xcom_pull``."""

    def __init__(self, xcoms: dict[str, object]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str, key: str = "return_value", **_: object) -> object:
        assert key == "return_value", key
        return self.xcoms[task_ids]


def _context(dag, xcoms: dict[str, object] | None = None, **params: object) -> dict:
    """A task's template context, faked: the DAG's params (``params`` override them), its
    run id, and a task instance holding ``xcoms``."""
    ti = _TI(XCOMS if xcoms is None else xcoms)
    values = {name: dag.params[name] for name in dag.params} | params
    return {"dag": dag, "run_id": RUN_ID, "params": values, "ti": ti, "task_instance": ti}


def _summary(dag_id: str, name: str) -> str:
    from lookalike.config import get_settings

    return get_settings().at("runs", f"{dag_id}/{RUN_ID.replace(':', '_')}", f"{name}.json")


@pytest.fixture(scope="module")
def fresh_dagbag():
    """The DAGs parsed for this module alone: rendering a task changes it for good."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def _rendered_args(dagbag, dag_id: str, task_id: str, **params: object) -> list[str]:
    """A Spark task's command line as the task runner renders it before ``execute``."""
    dag = dagbag.dags[dag_id]
    task = dag.get_task(task_id)
    task.render_template_fields(_context(dag, **params))
    return task.application_args


def test_keyword_arguments_become_flags_in_order():
    from lookalike_airflow.operators import cli_args

    assert cli_args(
        "folder",
        Path("/photos"),
        source="landing",
        delete_missing=True,
        publish=False,
        encoder=None,
        eval_limit=10,
        set={"epochs": "{{ params.epochs }}", "steps_per_epoch": None, "lr": 0.5},
        files=["a.csv", "b.csv"],
    ) == [
        "folder",
        "/photos",
        "--source",
        "landing",
        "--delete-missing",
        "--no-publish",
        "--eval-limit",
        "10",
        "--set",
        "epochs={{ params.epochs }}",
        "--set",
        "lr=0.5",
        "--files",
        "a.csv",
        "--files",
        "b.csv",
    ]
    assert cli_args() == []
    assert cli_args(sets="") == ["--sets", ""]  # an empty value is a value; only None is not


def test_an_upstream_output_resolves_to_text_and_becomes_upstream():
    from airflow.sdk import DAG, task
    from lookalike_airflow.operators import spark_job, xcom_path

    @task
    def version() -> int:
        return 7

    @task
    def decision() -> dict:
        return {"decision": {"challenger_version": "12"}}

    with DAG("wiring", schedule=None) as dag:
        v, d = version(), decision()
        job = spark_job(
            "job",
            "reindex.py",
            full=True,
            encoder=xcom_path(d, "decision", "challenger_version"),
            catalog_version=v,
            set={"v": v},
        )
    assert job.upstream_task_ids == {"version", "decision"}
    xcoms = {"version": 7, "decision": {"decision": {"challenger_version": "12"}}}
    job.render_template_fields(_context(dag, xcoms))
    assert job.application_args == [
        "--full",
        "--encoder",
        "12",
        "--catalog-version",
        "7",
        "--set",
        "v=7",
    ]


def test_a_runtime_argument_serializes_as_stable_text(fresh_dagbag):
    """The serialized DAG (what the scheduler and UI hold) shows an XComArg argument as its
    ``xcom_pull`` and is the same at every parse (its hash decides whether a DAG changed)."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = fresh_dagbag.dags["lookalike_train_and_promote"]
    first, second = DagSerialization.to_dict(dag), DagSerialization.to_dict(dag)
    assert first == second
    tasks = {t["__var"]["task_id"]: t["__var"] for t in first["dag"]["tasks"]}
    args = tasks["full_index"]["application_args"]
    assert "task_ids='record_catalogue_version'" in args[args.index("--catalog-version") + 1]
    assert "['decision']['challenger_version']" in args[args.index("--encoder") + 1]


def test_train_and_promote_command_lines(fresh_dagbag):
    dag_id = "lookalike_train_and_promote"
    assert _rendered_args(fresh_dagbag, dag_id, "tune", steps_per_epoch=50) == [
        *("--trials", "4", "--parallelism", "2", "--catalog-version", "7"),
        *("--set", "backbone=convnet", "--set", "epochs=2", "--set", "steps_per_epoch=50"),
        *("--summary-file", _summary(dag_id, "tune")),
    ]
    assert _rendered_args(fresh_dagbag, dag_id, "train") == [
        *("--config", "/store/configs/best.json", "--horovod", "2"),
        *("--catalog-version", "7", "--eval-limit", "10000"),
        *("--summary-file", _summary(dag_id, "train")),
    ]
    assert _rendered_args(fresh_dagbag, dag_id, "full_index") == [
        *("--full", "--encoder", "12", "--catalog-version", "7", "--no-publish"),
        *("--summary-file", _summary(dag_id, "full_index")),
    ]


def test_train_and_promote_wires_outputs_to_the_tasks_that_read_them(fresh_dagbag):
    dag = fresh_dagbag.dags["lookalike_train_and_promote"]
    upstream = {t.task_id: t.upstream_task_ids for t in dag.tasks}
    assert upstream["tune"] == {"record_catalogue_version"}
    assert upstream["train"] == {"best_config", "record_catalogue_version"}
    assert upstream["full_index"] == {"gate", "evaluate", "record_catalogue_version"}


def test_the_other_dags_command_lines(fresh_dagbag):
    from lookalike.config import get_settings

    assert _rendered_args(fresh_dagbag, "lookalike_bootstrap", "ingest_fashion_mnist") == [
        *("fashion-mnist", "--limit", "70000"),
        *("--summary-file", _summary("lookalike_bootstrap", "ingest")),
    ]
    assert _rendered_args(fresh_dagbag, "lookalike_bootstrap", "train", backbone="seed_cnn") == [
        *("--set", "backbone=seed_cnn", "--set", "epochs=2", "--set", "steps_per_epoch=600"),
        *("--eval-limit", "2000", "--summary-file", _summary("lookalike_bootstrap", "train")),
    ]
    assert _rendered_args(fresh_dagbag, "lookalike_bootstrap", "promote") == [
        *("--summary-file", _summary("lookalike_bootstrap", "promote")),
    ]
    landing = get_settings().landing_uri
    refresh = "lookalike_catalog_refresh"
    fresh_dagbag.dags[refresh].get_task("ingest_landing").render_template_fields(
        _context(fresh_dagbag.dags[refresh], {"ensure_landing_folder": landing})
    )
    assert fresh_dagbag.dags[refresh].get_task("ingest_landing").application_args == [
        *("folder", landing, "--source", "landing", "--delete-missing"),
        *("--summary-file", _summary(refresh, "ingest")),
    ]
    assert _rendered_args(fresh_dagbag, refresh, "reindex") == [
        *("--base", "served", "--no-publish", "--summary-file", _summary(refresh, "reindex")),
    ]
    assert _rendered_args(fresh_dagbag, "lookalike_shopper_model", "train") == [
        *("--set", "epochs=12", "--sets", "", "--horovod", "0", "--tune", "auto"),
        *("--summary-file", _summary("lookalike_shopper_model", "train")),
    ]


_DAG_FILE = """
from datetime import datetime

from airflow.sdk import dag, task
from lookalike_airflow.operators import spark_job, xcom_path


@task
def version() -> int:
    return 7


@task
def decision() -> dict:
    return {"decision": {"challenger_version": "12"}}


@dag(dag_id="wiring", schedule=None, start_date=datetime(2026, 1, 1), params={"n": 3})
def wiring():
    v = version()
    spark_job(
        "job", "reindex.py", full=True, catalog_version=v,
        encoder=xcom_path(decision(), "decision", "challenger_version"),
        set={"v": v, "n": "{{ params.n }}"}, publish=False,
    )


DAG = wiring()
"""

_RUN = """
import runpy, sys
from unittest import mock

from airflow.utils import db
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

db.initdb()
commands = []
def submit(self, application="", **kwargs):
    commands.append(self._build_spark_submit_command(application))
dag = runpy.run_path(sys.argv[1])["DAG"]
with mock.patch.object(SparkSubmitHook, "submit", submit):
    run = dag.test()
print("STATE:", run.state)
print("ARGS:", commands[0][commands[0].index("--full"):])
"""


@pytest.mark.slow
def test_airflow_resolves_upstream_outputs_when_the_task_runs(tmp_path: Path):
    """``dag.test()`` in a fresh Airflow (its own SQLite database): the Spark task's command
    line holds what its upstream tasks returned, as text (spark-submit itself faked)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "wiring.py").write_text(textwrap.dedent(_DAG_FILE))
    env = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(dags / "wiring.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ | env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STATE: success" in done.stdout, done.stdout[-2000:]
    expected = ["--full", "--catalog-version", "7", "--encoder", "12"]
    expected += ["--set", "v=7", "--set", "n=3", "--no-publish"]
    assert f"ARGS: {expected}" in done.stdout, done.stdout[-2000:]
