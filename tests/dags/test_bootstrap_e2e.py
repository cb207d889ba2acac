"""The bootstrap DAG end to end through Airflow (`airflow dags test`), on a small slice:
real spark-submit jobs, real Delta tables, a real MLflow registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_bootstrap_dag_runs_end_to_end(tmp_path):
    home = tmp_path / "home"
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "LOOKALIKE_HOME": str(home),
        "LOOKALIKE_SPARK_DRIVER_MEMORY": "1g",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    conf = {
        "limit": 300,
        "backbone": "seed_cnn",
        "epochs": 1,
        "steps_per_epoch": 20,
        "eval_limit": 200,
    }
    run = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "lookalike_bootstrap", "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    assert "state=success" in log or "DagRunState.SUCCESS" in log, log[-5000:]

    from lookalike.bundle.registry import production_version
    from lookalike.config import Settings

    settings = Settings(home=home)
    mv = production_version(settings)
    assert mv is not None and mv.tags["lookalike.index_version"] == "v000001"
    promote = json.loads(
        next((home / "runs" / "lookalike_bootstrap").rglob("promote.json")).read_text()
    )
    assert promote["decision"]["promote"] and promote["index"]["size"] == 600
