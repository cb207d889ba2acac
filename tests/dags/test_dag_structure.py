"""The DAG files: they import, parse fast, and are wired as documented."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from tests.support.builders import REPO

DAG_IDS = {
    "lookalike_bootstrap",
    "lookalike_catalog_refresh",
    "lookalike_catalog_fresh",
    "lookalike_train_and_promote",
    "lookalike_shopper_model",
}


def test_dagbag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


@pytest.mark.alone
@pytest.mark.parametrize("dag_file", sorted(p.name for p in (REPO / "dags").glob("*.py")))
def test_each_dag_file_parses_in_well_under_a_second(dag_file):
    """Parse time in a fresh interpreter, Airflow already imported (what the processor pays)."""
    code = (
        "import time, runpy, airflow.sdk\n"
        "from airflow.providers.apache.spark.operators import spark_submit\n"
        "t = time.perf_counter()\n"
        f"runpy.run_path({str(REPO / 'dags' / dag_file)!r})\n"
        "print('PARSE:', time.perf_counter() - t)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seconds = float(done.stdout.split("PARSE:")[1].split()[0])
    assert seconds < 1.0, f"{dag_file} took {seconds:.2f} s to parse"


def test_no_heavy_imports_at_dag_top_level():
    """Parsing a DAG must not import TensorFlow, Spark sessions, MLflow or ScaNN."""
    code = (
        "import runpy, sys, glob\n"
        f"[runpy.run_path(p) for p in glob.glob({str(REPO / 'dags')!r} + '/*.py')]\n"
        "heavy = [m for m in ('tensorflow', 'mlflow', 'scann', 'deltalake', 'pyspark.sql') "
        "if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HEAVY:\n" in done.stdout + "\n", done.stdout[-500:]


def test_every_library_name_a_dag_imports_exists():
    """Tasks import the library inside their functions (parsing stays fast), so a renamed
    function would only fail when the task runs: check every such import here."""
    import ast
    import importlib

    missing = []
    for path in sorted((REPO / "dags").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lookalike."):
                module = importlib.import_module(node.module)
                missing += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if not hasattr(module, alias.name)
                ]
    assert missing == []


def _edges(dag) -> set[tuple[str, str]]:
    return {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}


def _on_time_cron(dag, cron: str) -> bool:
    """The DAG runs on ``cron`` (UTC) with `OnTimeCron`: no past run when it is unpaused."""
    from lookalike_airflow.timetables import OnTimeCron

    return dag.timetable == OnTimeCron(cron) and type(dag.timetable) is OnTimeCron


def test_bootstrap_structure(dagbag):
    dag = dagbag.dags.get("lookalike_bootstrap")
    assert dag.schedule is None
    assert _edges(dag) == {("ingest_fashion_mnist", "train"), ("train", "promote")}
    assert set(dag.params.keys()) >= {"limit", "epochs", "backbone"}


def test_refresh_structure(dagbag):
    from lookalike.config import get_settings

    dag = dagbag.dags.get("lookalike_catalog_refresh")
    assert _edges(dag) == {
        ("ensure_landing_folder", "ingest_landing"),
        ("ingest_landing", "catalogue_changed"),
        ("catalogue_changed", "reindex"),
        ("reindex", "publish"),
        ("publish", "confirm_service"),
    }
    assert _on_time_cron(dag, get_settings().refresh_schedule)


def test_fresh_structure(dagbag):
    """Scheduled on the landing asset, whose watcher is the landing trigger (run by the
    triggerer), not on a clock."""
    from lookalike_airflow.triggers import LandingChangedTrigger

    from lookalike.config import get_settings

    dag = dagbag.dags.get("lookalike_catalog_fresh")
    assert _edges(dag) == {
        ("ingest_on_driver", "ingest_and_embed"),
        ("ingest_on_driver", "snapshot_due"),
        ("ingest_and_embed", "mark_ingested"),
        ("mark_ingested", "snapshot_due"),
        ("snapshot_due", "snapshot"),
        ("snapshot", "publish"),
    }
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.name == "lookalike_landing"
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, LandingChangedTrigger)
    settings = get_settings()
    assert watcher.trigger.landing_uri == settings.landing_uri
    assert watcher.trigger.poll_seconds == settings.landing_poll_seconds
    spark = dag.get_task("ingest_and_embed")
    assert "--embed-served" in spark.application_args
    assert settings.landing_uri in spark.application_args


def test_train_and_promote_structure(dagbag):
    from lookalike.config import get_settings

    dag = dagbag.dags.get("lookalike_train_and_promote")
    assert _on_time_cron(dag, get_settings().train_schedule)
    edges = _edges(dag)
    path = [
        "catalogue_ready",
        "record_catalogue_version",
        "tune",
        "best_config",
        "train",
        "evaluate",
        "gate",
    ]
    for a, b in itertools.pairwise(path):
        assert (a, b) in edges, (a, b)
    assert {("gate", "full_index"), ("full_index", "promote"), ("gate", "keep_champion")} <= edges
    assert set(dag.params.keys()) >= {"trials", "parallelism", "horovod", "epochs", "backbone"}


def test_shopper_model_structure(dagbag):
    from lookalike.config import get_settings

    dag = dagbag.dags.get("lookalike_shopper_model")
    path = [
        "ensure_interactions",
        "ingest_interactions",
        "interactions_changed",
        "train",
        "validate",
        "promote",
    ]
    assert _edges(dag) == set(itertools.pairwise(path))
    assert _on_time_cron(dag, get_settings().shopper_schedule)
    assert set(dag.params.keys()) >= {"epochs", "horovod", "tune", "margin", "force"}
    assert dag.params["tune"] == "auto"  # the first run on a data shape searches; later reuse


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_task_retries_and_is_bounded(dagbag, dag_id):
    dag = dagbag.dags.get(dag_id)
    assert dag.tags and "lookalike" in dag.tags and dag.doc_md
    assert dag.catchup is False and dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.retries >= 1, t.task_id
        assert t.execution_timeout is not None, t.task_id


def test_spark_tasks_use_the_spark_default_connection(dagbag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    spark_tasks = [
        t
        for dag_id in DAG_IDS
        for t in dagbag.dags.get(dag_id).tasks
        if isinstance(t, SparkSubmitOperator)
    ]
    assert len(spark_tasks) >= 8
    for t in spark_tasks:
        assert t._conn_id == "spark_default"
        assert (REPO / "spark_jobs").as_posix() in t.application
