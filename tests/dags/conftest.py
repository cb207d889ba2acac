"""Airflow in a throw-away AIRFLOW_HOME (SQLite), the project's dags/ folder, loopback only."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

from tests.support.builders import REPO

AIRFLOW_HOME = tempfile.mkdtemp(prefix="lookalike-airflow-")
os.environ.setdefault("AIRFLOW_HOME", AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
sys.path.insert(0, str(REPO / "plugins"))  # what Airflow does at import, in case it came first


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))
