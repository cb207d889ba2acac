"""Steps of the encoder DAG (``lookalike_train_and_promote``) between its Spark jobs.

Record the catalogue version, turn the tuning summary into a training config, gate the trained
challenger against the champion, then publish the winner's index. Importable without Airflow
(heavy libraries are imported inside the functions, so a DAG file that imports this parses
fast); the Spark work itself is in ``spark_jobs/``.
"""

from __future__ import annotations

import json
from typing import Any

from lookalike import storage
from lookalike.config import Settings, get_settings
from lookalike.workflows.summaries import read_summary


def catalogue_version(settings: Settings | None = None) -> int:
    """The catalogue version a training run will read (recorded before tuning starts)."""
    from lookalike.catalog.table import resolve_version

    return resolve_version((settings or get_settings()).catalog_uri)


def write_best_config(tune_summary: str, params: dict[str, Any]) -> str:
    """The tuned parameters plus the run's form (backbone, epochs, steps per epoch) as a
    training config file; validated here so a bad combination fails before the long training
    starts. The tuning trials' short schedule is not kept: epochs and steps per epoch come
    from the form, or (empty) from the catalogue when the training starts."""
    from lookalike.similarity.config import TrainConfig

    summary = read_summary(tune_summary)
    values = dict(summary["best_params"])
    if params.get("backbone"):
        values["backbone"] = params["backbone"]
    for key in ("epochs", "steps_per_epoch"):
        values.pop(key, None)
        if params.get(key):
            values[key] = int(params[key])
    cfg = TrainConfig.from_dict(values)
    out = storage.sibling(tune_summary, "best_config.json")
    storage.write_bytes(out, json.dumps(cfg.as_dict(), indent=2).encode())
    return out


def run_gate(train_summary: str, catalog_version: int, margin: float) -> dict[str, Any]:
    """Evaluate the encoder version a training run registered against the champion."""
    from lookalike.similarity.promotion import evaluate_gate

    version = read_summary(train_summary).get("model_version")
    if not version:
        raise ValueError(f"{train_summary}: the training run registered no model version")
    gate = evaluate_gate(
        get_settings(), challenger=str(version), margin=margin, catalog_version=catalog_version
    )
    return gate.to_dict()


def finalize_promotion(decision: dict[str, Any], index_summary: str) -> dict[str, Any]:
    """Publish the winner's index as the production bundle and move ``champion``."""
    from lookalike.index.versions import find_version
    from lookalike.similarity.promotion import PromotionResult, finalize

    index = read_summary(index_summary)
    if not index.get("index_version"):
        raise ValueError(f"{index_summary}: no index version was written")
    settings = get_settings()
    # by name, not by path: the job that wrote the version may have run on another host
    path = find_version(settings, index["index_version"])
    result = finalize(settings, PromotionResult.from_dict(decision), path)
    return result.to_dict()
