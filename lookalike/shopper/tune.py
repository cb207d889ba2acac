"""Hyperopt for the shopper model on Spark: the encoder's SparkTrials path, objective on the
validation split.

Each trial trains MF on ``validation_split`` (every user's newest train item held out; the
test items are never seen) and scores full-ranking NDCG@10 on those held-out items, the
protocol the tuned ALS and EASE baselines use. Why search the loss and the context at all:
on MovieLens the shopper's latest items carry most of the signal (softmax with context wins),
on the simulated shoppers they do not (context memorises sequences); the validation split
tells which data this is. Each trial is a nested MLflow run under the search's parent run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lookalike.config import Settings
from lookalike.shopper.model import MFConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: What the search varies (the rest comes from the base configuration).
SEARCH_SPACE_DOC = {
    "loss": "bce | softmax with context 0, 3 or 5 and 500 or 2,048 sampled items",
    "factors": "32 | 64 | 128",
    "l2": "log-uniform 1e-7 .. 1e-4",
    "learning_rate": "log-uniform 5e-4 .. 5e-3",
    "epochs": "the base's | twice the base's",
    "batch_size": "256 | the base's",
}


@dataclass(frozen=True)
class ShopperTuneResult:
    """What a search found: its parent MLflow run, the best parameters (as ``--set`` pairs
    too) and their validation NDCG@10, trials asked for and trials that succeeded."""

    parent_run_id: str
    best_params: dict[str, Any]
    best_sets: str
    best_val_ndcg_at_10: float
    trials: int
    trials_ok: int
    interactions_version: int | None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the command's output)."""
        return asdict(self)


def search_space(base: MFConfig) -> dict[str, Any]:
    """Hyperopt's space (``SEARCH_SPACE_DOC`` in words); context and sampled only exist
    under softmax (a nested choice), flattened by ``flatten``."""
    from hyperopt import hp

    softmax = {
        "loss": "softmax",
        "context": hp.choice("context", [0, 3, 5]),
        "sampled": hp.choice("sampled", [500, 2048]),
    }
    return {
        "loss": hp.choice("loss", [{"loss": "bce", "context": 0}, softmax]),
        "factors": hp.choice("factors", [32, 64, 128]),
        "l2": hp.loguniform("l2", math.log(1e-7), math.log(1e-4)),
        "learning_rate": hp.loguniform("learning_rate", math.log(5e-4), math.log(5e-3)),
        "epochs": hp.choice("epochs", [base.epochs, 2 * base.epochs]),
        "batch_size": hp.choice("batch_size", sorted({256, base.batch_size})),
    }


def flatten(params: dict[str, Any]) -> dict[str, Any]:
    """A point of the space as MFConfig fields (the nested loss choice lifted)."""
    out = {k: v for k, v in params.items() if k != "loss"}
    out.update(params["loss"] if isinstance(params["loss"], dict) else {"loss": params["loss"]})
    for k in ("factors", "epochs", "batch_size", "context", "sampled"):
        if k in out:
            out[k] = int(out[k])
    for k in ("l2", "learning_rate"):
        if k in out:
            out[k] = float(f"{float(out[k]):.3g}")
    return out


def as_sets(params: dict[str, Any]) -> str:
    """``key=value`` pairs for ``lookalike shopper train --sets``."""
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def trial_score(cfg: MFConfig, split_path: str, features_path: str | None) -> dict[str, float]:
    """Train on the validation split's train rows, score its held-out items (NDCG@10)."""
    from lookalike.model.devices import pin_gpu
    from lookalike.shopper.baselines import validation_split
    from lookalike.shopper.evaluate import rank_metrics
    from lookalike.shopper.model import factors_from_model, train_mf
    from lookalike.shopper.pipeline import load_staged

    pin_gpu()  # the GPU Spark assigned to this trial's task, when there is one
    split, features = load_staged(split_path, features_path)
    val = validation_split(split)
    model, _ = train_mf(cfg, val, item_features=features)
    factors = factors_from_model(cfg, model, val)
    return rank_metrics(lambda rows: factors.scores(rows), val, sampled=0)


def run_shopper_tuning(
    settings: Settings,
    base: MFConfig,
    *,
    trials: int,
    parallelism: int | None = None,
    interactions_version: int | None = None,
    spark: SparkSession | None = None,
) -> ShopperTuneResult:
    """Search ``trials`` configurations around ``base`` on Spark, on one interactions
    version; returns the best parameters and their validation NDCG@10."""
    import mlflow

    from lookalike.model.tune import spark_search
    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.shopper.pipeline import read_split, staged_inputs

    if trials < 1:
        raise ValueError(f"trials: must be >= 1, got {trials}")
    if spark is None:
        spark = _spark(settings)
    parallelism = parallelism or settings.tune_parallelism
    interactions_version, split, space = read_split(settings, interactions_version)
    features = space.vectors if space is not None and base.visual else None
    experiment_id = setup_mlflow(settings, settings.shopper_experiment)
    with (
        mlflow.start_run(run_name=f"tune-v{interactions_version}") as parent,
        staged_inputs(settings, split, features) as (split_path, features_path),
    ):
        mlflow.log_params(
            {"trials": trials, "parallelism": parallelism, "interactions": interactions_version}
            | {f"base_{k}": v for k, v in base.to_dict().items()}
        )
        mlflow.log_dict(SEARCH_SPACE_DOC, "search_space.json")
        parent_id = parent.info.run_id
        objective = _objective(
            base, split_path, features_path, experiment_id, parent_id, settings.tracking_uri
        )
        best, score, trials_ok = spark_search(
            objective,
            search_space(base),
            base.seed,
            trials,
            parallelism,
            spark,
            parent_id,
            settings.gpus_per_task,
        )
        best = flatten(best)
        mlflow.log_params({f"best_{k}": v for k, v in best.items()})
        mlflow.log_metric("best_val_ndcg_at_10", score)
        mlflow.log_metric("trials_ok", trials_ok)
    return ShopperTuneResult(
        parent_run_id=parent_id,
        best_params=best,
        best_sets=as_sets(best),
        best_val_ndcg_at_10=round(score, 5),
        trials=trials,
        trials_ok=trials_ok,
        interactions_version=interactions_version,
    )


def _spark(settings: Settings) -> SparkSession:
    from lookalike.spark import spark_session

    return spark_session("lookalike-shopper-tune", settings)


def _objective(
    base: MFConfig,
    split_path: str,
    features_path: str | None,
    experiment_id: str,
    parent_id: str,
    tracking_uri: str,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Hyperopt's objective, run on an executor: one nested MLflow run per trial; loss =
    -validation NDCG@10; a failing trial is marked failed instead of ending the search."""
    from hyperopt import STATUS_OK
    from mlflow import MlflowClient

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        import lookalike  # noqa: F401  (runs on an executor: legacy Keras switch first)

        client = MlflowClient(tracking_uri)
        run = client.create_run(
            experiment_id, tags={"mlflow.parentRunId": parent_id, "mlflow.runName": "trial"}
        )
        try:
            cfg = base.replace(**flatten(params))
            for k, v in cfg.to_dict().items():
                client.log_param(run.info.run_id, k, v)
            m = trial_score(cfg, split_path, features_path)
        except Exception as e:
            client.set_tag(run.info.run_id, "error", f"{type(e).__name__}: {e}"[:5000])
            client.set_terminated(run.info.run_id, "FAILED")
            return {"status": "fail", "error": f"{type(e).__name__}: {e}"}
        client.log_metric(run.info.run_id, "val_ndcg_at_10", m["ndcg_at_10"])
        client.log_metric(run.info.run_id, "val_hr_at_10", m["hr_at_10"])
        client.set_terminated(run.info.run_id)
        return {"loss": -m["ndcg_at_10"], "status": STATUS_OK}

    return objective
