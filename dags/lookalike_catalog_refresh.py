"""lookalike_catalog_refresh: nightly ingest of landed photos and incremental re-index."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task
from lookalike_airflow.operators import DEFAULT_ARGS, spark_job, summary_path
from lookalike_airflow.timetables import OnTimeCron

from lookalike.config import get_settings

SETTINGS = get_settings()
DOC = f"""
### Keep the index fresh
Ingest the landing folder (`{SETTINGS.landing_uri}`: one sub-folder per category; it is the
retailer's full photo set, so photos removed from it are deleted) -> skip the rest when the
catalogue did not move past the served index's watermark -> incremental re-index of the served
index from the change data feed (one new index version, recall-checked) -> publish the bundle (alias
`production`) -> confirm the service (`LOOKALIKE_SERVE_URL`) answers with it (skipped when
unset). Every step is idempotent: no changes, no commit, no version.
"""


@task
def ensure_landing_folder() -> str:
    from lookalike import storage

    storage.ensure_dir(SETTINGS.landing_uri)
    return SETTINGS.landing_uri


@task.short_circuit
def catalogue_changed() -> bool:
    from lookalike.workflows.catalog import catalog_changed_since_served

    return catalog_changed_since_served()


@task
def publish(summary_file: str) -> dict:
    from lookalike.workflows.catalog import publish_index
    from lookalike.workflows.summaries import read_summary

    return publish_index(read_summary(summary_file))


@task
def confirm_service(published: dict) -> dict:
    from airflow.exceptions import AirflowSkipException

    from lookalike.workflows.service import confirm_service as confirm

    url = get_settings().serve_url
    if not url:
        raise AirflowSkipException("LOOKALIKE_SERVE_URL is not set: no service to confirm")
    if not published.get("published"):
        raise AirflowSkipException(published.get("reason", "nothing published"))
    return confirm(published["bundle_version"], url)


@dag(
    dag_id="lookalike_catalog_refresh",
    schedule=OnTimeCron(SETTINGS.refresh_schedule),  # first run: the next time, not a past one
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["lookalike", "catalogue", "index"],
    doc_md=DOC,
)
def lookalike_catalog_refresh() -> None:
    ingest = spark_job(
        "ingest_landing",
        "ingest_catalog.py",
        "folder",
        ensure_landing_folder(),
        source="landing",
        delete_missing=True,
        summary_file=summary_path("ingest"),
    )
    reindex = spark_job(
        "reindex",
        "reindex.py",
        base="served",
        publish=False,
        summary_file=summary_path("reindex"),
    )
    published = publish(summary_path("reindex"))
    ingest >> catalogue_changed() >> reindex >> published
    confirm_service(published)


lookalike_catalog_refresh()
