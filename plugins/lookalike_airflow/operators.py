"""The operator factory the DAGs share: Spark jobs as ``SparkSubmitOperator`` tasks, where each
job writes its JSON summary, and the default arguments of every task.

Airflow-facing only (the steps between the jobs are library code in ``lookalike.workflows``).
The provider is imported inside ``spark_job`` and nothing heavy at the top, so a DAG file that
imports this still parses in well under a second.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from lookalike.config import REPO_ROOT, get_settings

SPARK_JOBS = REPO_ROOT / "spark_jobs"
SPARK_CONN_ID = "spark_default"

#: Defaults of every task: retried once, bounded in time.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "lookalike",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(hours=2),
}


def summary_path(task: str) -> str:
    """Where a Spark job writes its JSON summary, on the shared store (so the step reading it
    may run on another host), templated by run id (so retries overwrite)."""
    run = "{{ dag.dag_id }}/{{ run_id | replace(':', '_') }}"
    return get_settings().at("runs", run, f"{task}.json")


def spark_job(task_id: str, script: str, args: list[str], **kwargs: Any) -> Any:
    """A SparkSubmitOperator for ``spark_jobs/<script>`` on connection ``spark_default``
    (master from the connection: ``local[2]`` by default, any ``spark://`` master works)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    settings = get_settings()
    python = sys.executable
    env = {
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "PATH": f"{Path(python).parent}:{os.environ.get('PATH', '')}",
        "LOOKALIKE_HOME": str(settings.home),
    }
    if settings.spark_master.startswith("local"):  # a laptop: keep Spark on loopback
        env["SPARK_LOCAL_IP"] = os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")
    elif os.environ.get("SPARK_LOCAL_IP"):
        env["SPARK_LOCAL_IP"] = os.environ["SPARK_LOCAL_IP"]
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(SPARK_JOBS / script),
        application_args=args,
        conn_id=SPARK_CONN_ID,
        name=f"lookalike-{task_id}",
        driver_memory=settings.spark_driver_memory,
        env_vars=env,
        spark_binary=str(Path(python).parent / "spark-submit"),
        **kwargs,
    )
