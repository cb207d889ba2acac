"""What the Airflow DAGs call: Spark job operators and the small steps between them.

DAG files only wire these together. Everything here is importable without Airflow running
(unit tests call the steps directly); heavy libraries are imported inside the functions, so
a DAG file parses in well under a second.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from lookalike.config import REPO_ROOT, Settings, get_settings

SPARK_JOBS = REPO_ROOT / "spark_jobs"
SPARK_CONN_ID = "spark_default"

#: Defaults of every task: retried once, bounded in time.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "lookalike",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(hours=2),
}


def local_airflow_env(airflow_home: Path, lookalike_home: Path, **extra: str) -> dict[str, str]:
    """Environment for running this repository's DAGs with a local Airflow (`airflow dags
    test`, Spark ``local[2]``): what the end-to-end tests and bench/pipeline.py share.
    ``extra`` adds or overrides variables."""
    return (
        dict(os.environ)
        | {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
            "LOOKALIKE_HOME": str(lookalike_home),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        | extra
    )


def summary_path(task: str) -> str:
    """Where a Spark job writes its JSON summary (templated by run id, so retries overwrite)."""
    home = get_settings().home
    return f"{home}/runs/{{{{ dag.dag_id }}}}/{{{{ run_id | replace(':', '_') }}}}/{task}.json"


def read_summary(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


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


# ------------------------------------------------------------------ steps between Spark jobs


def catalogue_version(settings: Settings | None = None) -> int:
    """The catalogue version a training run will read (recorded before tuning starts)."""
    from lookalike.catalog.table import resolve_version

    return resolve_version((settings or get_settings()).catalog_path)


def catalogue_changed_since_index(settings: Settings | None = None) -> bool:
    """True when the catalogue moved past the latest index version's watermark."""
    from lookalike.catalog.table import table_version
    from lookalike.index.builder import latest_version
    from lookalike.index.scann_index import read_manifest

    settings = settings or get_settings()
    latest = latest_version(settings)
    current = table_version(settings.catalog_path)
    if latest is None or current is None:
        return current is not None
    return current > int(read_manifest(latest)["catalog_version"])


def publish_index(summary: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Publish the index version a re-index wrote (none written: nothing to publish)."""
    from lookalike.bundle.registry import publish_bundle

    settings = settings or get_settings()
    if not summary.get("path"):
        return {"published": False, "reason": f"no new index version ({summary.get('kind')})"}
    result = publish_bundle(settings, Path(summary["path"]))
    return {"published": True} | result.to_dict()


def confirm_service(
    expected_bundle: str, url: str | None, timeout: float = 300, every: float = 2
) -> dict[str, Any]:
    """Wait until the service at ``url`` reports ``expected_bundle``; raises on timeout."""
    import httpx

    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/v1/version", timeout=5)
            if r.status_code == 200:
                seen = r.json()
                if seen.get("bundle_version") == str(expected_bundle):
                    return seen
        except httpx.HTTPError as e:
            seen = {"error": str(e)}
        time.sleep(every)
    raise TimeoutError(f"service {url} still reports {seen} after {timeout:.0f} s")


def write_best_config(tune_summary: str, params: dict[str, Any]) -> str:
    """The tuned parameters plus the run's form (backbone, epochs, steps per epoch) as a
    training config file; validated here so a bad combination fails before the long training
    starts. The tuning trials' short schedule is not kept: epochs and steps per epoch come
    from the form, or (empty) from the catalogue when the training starts."""
    from lookalike.model.config import TrainConfig

    summary = read_summary(tune_summary)
    values = dict(summary["best_params"])
    if params.get("backbone"):
        values["backbone"] = params["backbone"]
    for key in ("epochs", "steps_per_epoch"):
        values.pop(key, None)
        if params.get(key):
            values[key] = int(params[key])
    cfg = TrainConfig.from_dict(values)
    out = Path(tune_summary).with_name("best_config.json")
    out.write_text(json.dumps(cfg.as_dict(), indent=2))
    return str(out)


def run_gate(train_summary: str, catalog_version: int, margin: float) -> dict[str, Any]:
    """Evaluate the encoder version a training run registered against the champion."""
    from lookalike.workflows.promotion import evaluate_gate

    version = read_summary(train_summary).get("model_version")
    if not version:
        raise ValueError(f"{train_summary}: the training run registered no model version")
    gate = evaluate_gate(
        get_settings(), challenger=str(version), margin=margin, catalog_version=catalog_version
    )
    return gate.to_dict()


def finalize_promotion(decision: dict[str, Any], index_summary: str) -> dict[str, Any]:
    """Publish the winner's index as the production bundle and move ``champion``."""
    from lookalike.workflows.promotion import PromotionResult, finalize

    index = read_summary(index_summary)
    if not index.get("path"):
        raise ValueError(f"{index_summary}: no index version was written")
    result = finalize(get_settings(), PromotionResult.from_dict(decision), Path(index["path"]))
    return result.to_dict()


# ------------------------------------------------------------------ shopper model steps


def ensure_interactions(
    settings: Settings | None = None, *, users: int = 5000, events: int = 500_000
) -> dict[str, Any]:
    """First run on a fresh home: no interactions table and nothing landed -> land simulated
    shoppers (default: the documented 5,000 users and 500,000 events; seeded, so a retry lands
    the same file and ingests nothing new)."""
    from deltalake import DeltaTable

    from lookalike.shopper.interactions import landed_files

    settings = settings or get_settings()
    if DeltaTable.is_deltatable(str(settings.interactions_path)) or landed_files(settings):
        return {"simulated": False}
    import pyarrow.parquet as pq

    from lookalike.shopper.items import load_item_space
    from lookalike.shopper.simulator import SimConfig, simulate

    cfg = SimConfig(users=users, events=events)
    space = load_item_space(settings)
    events = simulate(cfg, space.item_ids, space.categories, space.vectors)
    out = settings.interactions_landing_dir / f"simulated-seed{cfg.seed}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(events, tmp)
    tmp.replace(out)
    return {"simulated": True, "file": str(out), "events": events.num_rows}


def ingest_landed_interactions(settings: Settings | None = None) -> dict[str, Any]:
    """Ingest every landed interaction file (merge on event id: a retry inserts nothing)."""
    from lookalike.shopper.interactions import ingest_file, landed_files

    settings = settings or get_settings()
    done = [ingest_file(settings, f).to_dict() for f in landed_files(settings)]
    return {
        "files": len(done),
        "inserted": sum(d["inserted"] for d in done),
        "rejected": sum(d["rejected"] for d in done),
    }


def interactions_changed_since_production(settings: Settings | None = None) -> bool:
    """True when the interactions table moved past what the production shopper model was
    trained on (or there is no production model yet): otherwise training would only redo it."""
    from lookalike.catalog.table import table_version
    from lookalike.registry.aliases import INTERACTIONS_VERSION_TAG
    from lookalike.shopper.registry import version_by

    settings = settings or get_settings()
    current = table_version(settings.interactions_path)
    if current is None:
        return False
    prod = version_by(settings, settings.shopper_alias)
    raw = (prod.tags or {}).get(INTERACTIONS_VERSION_TAG, "") if prod is not None else ""
    return not raw.isdigit() or current > int(raw)


def validate_shopper(train_summary: str) -> bool:
    """The trained model must beat the popularity baseline on NDCG@10 to go to the gate
    (a model that does not personalise is not worth promoting)."""
    summary = read_summary(train_summary)
    if not summary.get("model_version"):
        raise ValueError(f"{train_summary}: the training run registered no model version")
    metrics = summary["metrics"]
    return float(metrics["mf"]["ndcg_at_10"]) > float(metrics["popularity"]["ndcg_at_10"])


def promote_shopper(margin: float | None = None) -> dict[str, Any]:
    from lookalike.shopper.registry import promote

    return promote(get_settings(), margin=margin).to_dict()
