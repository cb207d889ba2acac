"""lookalike_catalog_fresh: photos landed, replaced or removed -> ingested, embedded, served."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, AssetWatcher, dag, task
from lookalike_airflow.operators import DEFAULT_ARGS, spark_job, summary_path
from lookalike_airflow.triggers import LandingChangedTrigger

from lookalike.config import get_settings

SETTINGS = get_settings()
LANDING = Asset(
    name="lookalike_landing",
    watchers=[
        AssetWatcher(
            name="lookalike_landing_listing",
            trigger=LandingChangedTrigger(
                landing_uri=SETTINGS.landing_uri,
                state_uri=SETTINGS.state_uri,
                poll_seconds=SETTINGS.landing_poll_seconds,
            ),
        )
    ],
)
DOC = f"""
### A landed photo, served within a minute
Airflow's triggerer lists the landing store (`{SETTINGS.landing_uri}`) every
{SETTINGS.landing_poll_seconds:g} s; a photo added, replaced or removed is an event of the
`lookalike_landing` asset, which runs this DAG: the files changed since the last ingest are
ingested and embedded with the served bundle's encoder on the driver (a few photos: seconds,
one commit to each table, the listing marked ingested), or, for many changes or anything
unusual (no ingested listing yet, a refused photo, a link, an item another source owns), by
a Spark job that ingests the whole store -> when the changes since the served index reach
`LOOKALIKE_INDEX_SNAPSHOT_SHARE` of it, a full snapshot (re-index, recall check, publish).
Running services apply the new embeddings from the table's change feed within seconds, with
no new bundle. `lookalike_catalog_refresh` stays the nightly backstop.
"""


@task.branch
def ingest_on_driver() -> list[str]:
    """A few changed photos: ingested and embedded here, in seconds; the run ends unless a
    snapshot is due. Otherwise the Spark job's turn."""
    from lookalike.workflows.catalog import fresh_ingest, snapshot_due

    done = fresh_ingest()
    print(done)
    if done["spark"]:
        return ["ingest_and_embed"]
    return ["snapshot_due"] if snapshot_due() else []


@task
def mark_ingested() -> dict:
    from lookalike.workflows.catalog import mark_listed_ingested

    return mark_listed_ingested()


@task.short_circuit(trigger_rule="none_failed_min_one_success")
def snapshot_due() -> bool:
    from lookalike.workflows.catalog import snapshot_due as due

    return due()


@task
def publish(summary_file: str) -> dict:
    from lookalike.workflows.catalog import publish_index
    from lookalike.workflows.summaries import read_summary

    return publish_index(read_summary(summary_file))


@dag(
    dag_id="lookalike_catalog_fresh",
    schedule=[LANDING],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one ingest at a time; events meanwhile fold into the next run
    default_args=DEFAULT_ARGS,
    tags=["lookalike", "catalogue", "freshness"],
    doc_md=DOC,
)
def lookalike_catalog_fresh() -> None:
    driver = ingest_on_driver()
    ingest = spark_job(
        "ingest_and_embed",
        "ingest_catalog.py",
        "folder",
        SETTINGS.landing_uri,
        source="landing",
        delete_missing=True,
        embed_served=True,
        summary_file=summary_path("ingest"),
    )
    reindex = spark_job(
        "snapshot",
        "reindex.py",
        base="served",
        publish=False,
        summary_file=summary_path("snapshot"),
    )
    due = snapshot_due()
    driver >> ingest >> mark_ingested() >> due >> reindex
    driver >> due
    reindex >> publish(summary_path("snapshot"))


lookalike_catalog_fresh()
