"""lookalike_train_and_promote: tune, train, evaluate, gate, index, promote (weekly/manual)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from lookalike_airflow.operators import DEFAULT_ARGS, spark_job, summary_path, xcom_path
from lookalike_airflow.sensors import DeltaTableSensor
from lookalike_airflow.timetables import OnTimeCron

from lookalike.config import get_settings

SETTINGS = get_settings()
DOC = """
### Train and promote an encoder
Wait for a catalogue (a home nobody bootstrapped yet: the run skips after 6 hours) -> record
the catalogue version -> Hyperopt with SparkTrials (validation mAP@R on a slice of
`train`) -> train the best configuration data-parallel with Horovod on Spark -> evaluate
challenger vs champion on the same catalogue version -> gate (branch) -> full ScaNN index for
the winner (recall-checked) -> publish the bundle and move `champion` and `production`.
Trigger with the form to change trials, parallelism, Horovod processes, epochs or backbone.
"""


@task
def record_catalogue_version() -> int:
    from lookalike.workflows.encoder import catalogue_version

    return catalogue_version()


@task
def best_config(tune_summary: str, params: dict | None = None) -> str:
    from lookalike.workflows.encoder import write_best_config

    return write_best_config(tune_summary, params or {})


@task
def evaluate(train_summary: str, catalog_version: int, params: dict | None = None) -> dict:
    from lookalike.workflows.encoder import run_gate

    return run_gate(train_summary, int(catalog_version), float((params or {})["margin"]))


@task.branch
def gate(decision: dict) -> str:
    return "full_index" if decision["decision"]["promote"] else "keep_champion"


@task
def promote(decision: dict, index_summary: str) -> dict:
    from lookalike.workflows.encoder import finalize_promotion

    return finalize_promotion(decision, index_summary)


@task
def keep_champion(decision: dict) -> str:
    return decision["decision"]["reason"]


@dag(
    dag_id="lookalike_train_and_promote",
    schedule=OnTimeCron(SETTINGS.train_schedule),  # first run: the next time, not a past one
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["lookalike", "training", "promotion"],
    doc_md=DOC,
    params={
        "trials": Param(4, type="integer", minimum=1, description="Hyperopt trials"),
        "parallelism": Param(2, type="integer", minimum=1, description="SparkTrials parallelism"),
        "horovod": Param(2, type="integer", minimum=0, description="Horovod processes (0: none)"),
        "epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="epochs of the final training (empty: from the catalogue, 10 or more)",
        ),
        "steps_per_epoch": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="steps per epoch, tuning and training (empty: one pass over the items)",
        ),
        "backbone": Param("convnet", type="string", description="seed_cnn | convnet | keras:..."),
        "tune_epochs": Param(2, type="integer", minimum=1, description="epochs per trial"),
        "eval_limit": Param(10000, type="integer", minimum=10, description="test queries"),
        "margin": Param(0.0, type="number", minimum=0, description="promotion margin"),
    },
)
def lookalike_train_and_promote() -> None:
    catalogue_ready = DeltaTableSensor(
        task_id="catalogue_ready",
        table_path=str(SETTINGS.catalog_uri),
        mode="reschedule",
        poke_interval=600,
        timeout=timedelta(hours=6).total_seconds(),
        soft_fail=True,
    )
    version = record_catalogue_version()
    tune = spark_job(
        "tune",
        "tune.py",
        trials="{{ params.trials }}",
        parallelism="{{ params.parallelism }}",
        catalog_version=version,
        set={
            "backbone": "{{ params.backbone }}",
            "epochs": "{{ params.tune_epochs }}",
            "steps_per_epoch": "{{ params.steps_per_epoch | tojson }}",
        },
        summary_file=summary_path("tune"),
    )
    config = best_config(summary_path("tune"))
    train = spark_job(
        "train",
        "train.py",
        config=config,
        horovod="{{ params.horovod }}",
        catalog_version=version,
        eval_limit="{{ params.eval_limit }}",
        summary_file=summary_path("train"),
    )
    decision = evaluate(summary_path("train"), version)
    full_index = spark_job(
        "full_index",
        "reindex.py",
        full=True,  # first: reindex.py's mode (a full build)
        encoder=xcom_path(decision, "decision", "challenger_version"),
        catalog_version=version,
        publish=False,
        summary_file=summary_path("full_index"),
    )
    branch = gate(decision)
    catalogue_ready >> version
    tune >> config  # the summaries are files: order what reads one after what writes it
    train >> decision
    branch >> full_index >> promote(decision, summary_path("full_index"))
    branch >> keep_champion(decision)


lookalike_train_and_promote()
