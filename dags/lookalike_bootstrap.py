"""lookalike_bootstrap: first run on an empty home (manual trigger)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag
from lookalike_airflow.operators import DEFAULT_ARGS, spark_job, summary_path

DOC = """
### Bootstrap an empty deployment
Ingest Fashion-MNIST -> short encoder training -> promotion gate (no champion yet: the new
encoder wins) -> full ScaNN index -> recommender bundle, alias `production`.
Every step is a Spark job (`spark_jobs/`), safe to retry: ingest commits nothing when the
table already matches, training registers one more `challenger`, promotion keeps a better
champion. `limit` is per split (70000 = the whole catalogue).
"""


@dag(
    dag_id="lookalike_bootstrap",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["lookalike", "bootstrap"],
    doc_md=DOC,
    params={
        "limit": Param(70000, type="integer", minimum=1, description="images per split"),
        "backbone": Param("convnet", type="string", description="seed_cnn | convnet | keras:..."),
        "epochs": Param(2, type="integer", minimum=1),
        "steps_per_epoch": Param(600, type="integer", minimum=1),
        "eval_limit": Param(2000, type="integer", minimum=10, description="test queries"),
    },
)
def lookalike_bootstrap() -> None:
    ingest = spark_job(
        "ingest_fashion_mnist",
        "ingest_catalog.py",
        "fashion-mnist",
        limit="{{ params.limit }}",
        summary_file=summary_path("ingest"),
    )
    train = spark_job(
        "train",
        "train.py",
        set={
            "backbone": "{{ params.backbone }}",
            "epochs": "{{ params.epochs }}",
            "steps_per_epoch": "{{ params.steps_per_epoch }}",
        },
        eval_limit="{{ params.eval_limit }}",
        summary_file=summary_path("train"),
    )
    promote = spark_job("promote", "promote.py", summary_file=summary_path("promote"))
    ingest >> train >> promote


lookalike_bootstrap()
