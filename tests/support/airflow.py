"""A local Airflow for this repository's DAGs (`airflow dags test`, Spark ``local[2]``): the
environment the end-to-end DAG tests and bench/pipeline.py share."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def local_airflow_env(airflow_home: Path, lookalike_home: Path, **extra: str) -> dict[str, str]:
    """Environment for running this repository's DAGs with a local Airflow (`airflow dags
    test`, Spark ``local[2]``). ``extra`` adds or overrides variables."""
    return (
        dict(os.environ)
        | {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
            "LOOKALIKE_HOME": str(lookalike_home),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        | extra
    )
