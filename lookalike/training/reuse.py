"""Reusing an earlier search instead of searching again: the tags a search's parent run
carries, and the lookup of the latest one that fits.

A search is reusable for the same base configuration (a digest, ``config_digest``) on data
of the same shape (a product's text, usually sizes rounded to a power of two with
``power_of_two``): the first training on a data set pays for the search, later runs on data
of the same shape reuse it while it is young enough.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Tags of a search's parent run: what ``latest_search`` matches and reads back.
SHAPE_TAG = "lookalike.tune.shape"
BASE_TAG = "lookalike.tune.base"
TRIALS_TAG = "lookalike.tune.trials"
BEST_TAG = "lookalike.tune.best"


def power_of_two(n: int) -> int:
    """``n`` rounded to the nearest power of two, as its exponent: a size that grows a little
    keeps its bucket, one that doubles moves to the next (empty counts as one)."""
    return round(math.log2(max(n, 1)))


def config_digest(values: Mapping[str, Any]) -> str:
    """A short digest of a base configuration: a search around other defaults is another
    search."""
    text = json.dumps(dict(values), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tag_search(shape: str, base_digest: str, trials: int) -> None:
    """On the active (parent) run: what ``latest_search`` matches it by."""
    import mlflow

    mlflow.set_tags({SHAPE_TAG: shape, BASE_TAG: base_digest, TRIALS_TAG: str(trials)})


def tag_best(best: Mapping[str, Any]) -> None:
    """On the active (parent) run: the best parameters as JSON, what a reuse returns (a
    search without this tag never finished)."""
    import mlflow

    mlflow.set_tag(BEST_TAG, json.dumps(dict(best), sort_keys=True))


@dataclass(frozen=True)
class EarlierSearch:
    """A finished search found for reuse: its parent run, best parameters, trials asked for
    and the run's metrics and params (what a product's result reads back)."""

    run_id: str
    best_params: dict[str, Any]
    trials: int
    metrics: dict[str, float]
    params: dict[str, str]


def latest_search(
    tracking_uri: str,
    experiment_id: str,
    shape: str,
    base_digest: str,
    min_trials: int,
    max_age_days: float,
) -> EarlierSearch | None:
    """The latest finished search tagged with ``shape`` and ``base_digest``, with at least
    ``min_trials`` trials (one of them finished: the base alone is no search), younger than
    ``max_age_days``; None when there is none."""
    from mlflow import MlflowClient

    runs = MlflowClient(tracking_uri).search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{SHAPE_TAG}` = '{shape}' and tags.`{BASE_TAG}` = '{base_digest}' "
            "and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    oldest_ms = (time.time() - max_age_days * 86400) * 1000
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        if run.info.start_time < oldest_ms or BEST_TAG not in tags:
            continue
        if int(tags.get(TRIALS_TAG, 0)) < min_trials or metrics.get("trials_ok", 0) < 1:
            continue  # a smaller budget, or no trial finished
        return EarlierSearch(
            run_id=run.info.run_id,
            best_params=json.loads(tags[BEST_TAG]),
            trials=int(tags[TRIALS_TAG]),
            metrics=dict(metrics),
            params=dict(run.data.params),
        )
    return None
