"""Hyperparameter search with Hyperopt on Spark (SparkTrials), behind one function.

The objective is validation mAP@R: train on the fit slice of the TRAIN split, query the
validation slice against it. The test split is never looked at while tuning. Each trial is
a nested MLflow run under the search's parent run, which gets the best parameters (the
search itself, its trial runs and the best's record: ``training.search``). No per-trial time
budget and no reuse of an earlier search: every ``tune`` searches in full.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lookalike.config import Settings, get_settings
from lookalike.similarity.config import DataRef, TrainConfig
from lookalike.training.search import (
    Objective,
    SearchRuns,
    TrialScore,
    log_best,
    nested_trial,
    spark_search,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: What the search varies (the rest comes from the base configuration).
SEARCH_SPACE_DOC = {
    "learning_rate": "log-uniform 3e-4 .. 3e-3",
    "embedding_size": "64 | 128 | 256",
    "examples_per_class": "5 | 10 | 20",
    "epochs": "base-1 .. base+2 (at least 1)",
    "width": "16 | 32 | 48",
}


@dataclass(frozen=True)
class TuneResult:
    """What a search found: its parent MLflow run, the best parameters and their validation
    mAP@R, trials asked for and trials that succeeded, on one catalogue version."""

    parent_run_id: str
    best_params: dict[str, Any]
    best_val_map_at_r: float
    trials: int
    trials_ok: int
    catalog_version: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the command's output, the DAG's tuning summary)."""
        return asdict(self)


def search_space(base: TrainConfig) -> dict[str, Any]:
    """Hyperopt's search space (``SEARCH_SPACE_DOC`` in words), epochs around the base's."""
    from hyperopt import hp

    return {
        "learning_rate": hp.loguniform("learning_rate", math.log(3e-4), math.log(3e-3)),
        "embedding_size": hp.choice("embedding_size", [64, 128, 256]),
        "examples_per_class": hp.choice("examples_per_class", [5, 10, 20]),
        "epochs": hp.choice("epochs", sorted({max(1, base.n_epochs + d) for d in (-1, 0, 1, 2)})),
        "width": hp.choice("width", [16, 32, 48]),
    }


def trial_score(cfg: TrainConfig, ref: DataRef, validation_fraction: float = 0.1) -> dict[str, Any]:
    """Train on the fit slice of train, score mAP@R of validation queries against it."""
    from lookalike.similarity.data import load_training_items, validation_split
    from lookalike.similarity.evaluate import retrieval_metrics
    from lookalike.similarity.model import embed, train_encoder
    from lookalike.training.devices import pin_gpu

    pin_gpu()  # the GPU Spark assigned to this trial's task, when there is one
    items = load_training_items(cfg, ref)
    fit, val = validation_split(items, validation_fraction)
    model, history = train_encoder(cfg, fit)
    metrics = retrieval_metrics(embed(model, val.x), val.y, embed(model, fit.x), fit.y)
    return {"metrics": metrics, "history": history}


def run_tuning(
    base: TrainConfig,
    *,
    trials: int,
    parallelism: int | None = None,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
    catalog_version: int | None = None,
) -> TuneResult:
    """Search ``trials`` configurations on Spark; returns the best parameters and score."""
    import mlflow

    from lookalike.catalog.table import resolve_version
    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.similarity import tracking
    from lookalike.similarity.data import fit_to_catalog

    settings = settings or get_settings()
    if trials < 1:
        raise ValueError(f"trials: must be >= 1, got {trials}")
    if spark is None:
        from lookalike.spark import spark_session

        spark = spark_session("lookalike-tune", settings)
    parallelism = parallelism or settings.tune_parallelism
    version = resolve_version(settings.catalog_uri, catalog_version)
    ref = DataRef(str(settings.catalog_uri), version, {"split": "train", "purpose": "tuning"})
    base = fit_to_catalog(base, settings.catalog_uri, version)
    experiment_id = setup_mlflow(settings)
    space = search_space(base)

    with mlflow.start_run(run_name="tune") as parent:
        mlflow.log_params(
            {"trials": trials, "parallelism": parallelism}
            | {f"base_{k}": v for k, v in base.to_params().items()}
        )
        mlflow.log_dict(SEARCH_SPACE_DOC, "search_space.json")
        tracking.log_dataset(ref, context="tuning")
        runs = SearchRuns(settings.tracking_uri, experiment_id, parent.info.run_id)
        best_params, best_score, trials_ok = spark_search(
            _objective(base, ref, runs),
            space,
            base.seed,
            trials,
            parallelism,
            spark,
            runs.parent_id,
            settings.gpus_per_task,
        )
        log_best(best_params, {"best_val_map_at_r": best_score, "trials_ok": trials_ok})
    return TuneResult(
        parent_run_id=runs.parent_id,
        best_params=best_params,
        best_val_map_at_r=best_score,
        trials=trials,
        trials_ok=trials_ok,
        catalog_version=version,
    )


def _objective(base: TrainConfig, ref: DataRef, runs: SearchRuns) -> Objective:
    """Hyperopt's objective, run on an executor: a nested MLflow run per trial (its
    parameters, validation mAP@R and P@1); loss = -mAP@R. Errors as the encoder's trials
    always recorded them (the message, untagged)."""

    def configure(point: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
        cfg = base.replace(**point)
        return cfg, cfg.to_params()

    def score(cfg: TrainConfig) -> TrialScore:
        m = trial_score(cfg, ref)["metrics"]
        return TrialScore(
            loss=-m["map_at_r"],
            metrics={"val_map_at_r": m["map_at_r"], "val_precision_at_1": m["precision_at_1"]},
            extra={"val_precision_at_1": m["precision_at_1"]},
        )

    return nested_trial(runs, configure, score, detailed_errors=False)
