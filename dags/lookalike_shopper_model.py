"""lookalike_shopper_model: nightly ingest of interactions, MF training, validation, promotion."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task
from lookalike_airflow.operators import DEFAULT_ARGS, spark_job, summary_path
from lookalike_airflow.timetables import OnTimeCron

from lookalike.config import get_settings

SETTINGS = get_settings()
DOC = f"""
### Shopper recommendations
Land the default simulated shoppers when the home has no interactions yet -> ingest interaction
files from `{SETTINGS.interactions_landing_uri}` (CSV/Parquet events or MovieLens ratings; bad
rows go to `interactions_rejects` with reasons) -> train the matrix-factorisation model on
Spark (Horovod when `horovod` > 0) with the best parameters of a Hyperopt search on the
validation split (`tune`: `auto` reuses the latest search made for data of this shape and runs
a new one when there is none; a number runs that many new trials; 0 trains the defaults; see
docs/shopper.md) with the popularity and ALS baselines in the same
evaluation (skipped when no interactions arrived since the production model's version, unless
`force`) -> validate (it must beat popularity on NDCG@10) -> gate against `production` on
the same interactions version and move the alias when it wins. The service follows the alias.
"""


@task
def ensure_interactions(params: dict | None = None) -> dict:
    from lookalike.workflows.shopper import ensure_interactions as ensure

    p = params or {}
    return ensure(users=int(p.get("sim_users", 5000)), events=int(p.get("sim_events", 500_000)))


@task
def ingest_interactions() -> dict:
    from lookalike.workflows.shopper import ingest_landed_interactions

    return ingest_landed_interactions()


@task.short_circuit
def interactions_changed(params: dict | None = None) -> bool:
    from lookalike.workflows.shopper import interactions_changed_since_production

    return bool((params or {}).get("force")) or interactions_changed_since_production()


@task.short_circuit
def validate(train_summary: str) -> bool:
    from lookalike.workflows.shopper import validate_shopper

    return validate_shopper(train_summary)


@task
def promote(params: dict | None = None) -> dict:
    from lookalike.workflows.shopper import promote_shopper

    return promote_shopper(float((params or {}).get("margin", 0.0)))


@dag(
    dag_id="lookalike_shopper_model",
    schedule=OnTimeCron(SETTINGS.shopper_schedule),  # first run: the next time, not a past one
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["lookalike", "shopper", "training"],
    doc_md=DOC,
    params={
        "epochs": Param(12, type="integer", minimum=1, description="MF training epochs"),
        "overrides": Param(
            "", type="string", description="more MF settings, e.g. 'factors=64 learning_rate=0.005'"
        ),
        "horovod": Param(0, type="integer", minimum=0, description="Horovod processes (0: none)"),
        "tune": Param(
            "auto",
            type="string",
            pattern="^(auto|[0-9]+)$",
            description="Hyperopt on the validation split before training: auto (reuse the "
            "search for data of this shape, else search), N new trials, or 0 (none)",
        ),
        "margin": Param(0.0, type="number", minimum=0, description="promotion margin"),
        "force": Param(False, type="boolean", description="train even if no new interactions"),
        "sim_users": Param(5000, type="integer", minimum=1, description="first run: simulated"),
        "sim_events": Param(500_000, type="integer", minimum=1, description="first run: events"),
    },
)
def lookalike_shopper_model() -> None:
    train = spark_job(
        "train",
        "shopper_train.py",
        set={"epochs": "{{ params.epochs }}"},
        sets="{{ params.overrides }}",
        horovod="{{ params.horovod }}",
        tune="{{ params.tune }}",
        summary_file=summary_path("train"),
    )
    (
        ensure_interactions()
        >> ingest_interactions()
        >> interactions_changed()
        >> train
        >> validate(summary_path("train"))
        >> promote()
    )


lookalike_shopper_model()
