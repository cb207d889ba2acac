"""Hyperopt for the shopper model on Spark: the encoder's SparkTrials path, objective on the
validation split.

Each trial trains MF on ``validation_split`` (every user's newest train item held out; the
test items are never seen) and scores full-ranking NDCG@10 on those held-out items, the
protocol the tuned ALS and EASE baselines use. Why search the loss and the context at all:
on MovieLens the shopper's latest items carry most of the signal (softmax with context wins),
on the simulated shoppers they do not (context memorises sequences); the validation split
tells which data this is. Each trial is a nested MLflow run under the search's parent run.

The base configuration is scored too (a nested run named ``base``) and kept when no trial
beats it on validation, so a search never trades the defaults for something worse. ``tune``
with ``"auto"`` (the default of `shopper train` and of the shopper DAG) reuses the latest
search made for the same base configuration and data shape (users, items and train pairs
each within the same power of two) when it is younger than ``shopper_retune_days``, and
searches ``shopper_tune_trials`` trials otherwise: the first training of a data set pays for
the search, nightly runs on data of the same shape reuse it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lookalike.config import Settings
from lookalike.shopper.model import MFConfig
from lookalike.training.budget import cut_tags, time_budget, trial_share
from lookalike.training.reuse import (
    config_digest,
    latest_search,
    power_of_two,
    tag_best,
    tag_search,
)
from lookalike.training.search import (
    Objective,
    SearchRuns,
    TrialScore,
    end_cancelled_trials,
    log_best,
    nested_trial,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lookalike.shopper.data import Split

log = logging.getLogger(__name__)

#: The MFConfig fields a search sets (``sampled`` only matters under softmax).
SEARCHED = ("loss", "context", "sampled", "factors", "l2", "learning_rate", "epochs", "batch_size")
#: ``tune`` values: a number of trials (0: no search) or this word.
AUTO = "auto"

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
    shape: str = ""
    base_val_ndcg_at_10: float | None = None
    reused: bool = False

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


def trial_score(
    cfg: MFConfig,
    split_path: str,
    features_path: str | None,
    budget_seconds: float | None = None,
) -> dict[str, float]:
    """Train on the validation split's train rows, score its held-out items (NDCG@10);
    ``epochs`` says how many epochs ran (fewer than ``cfg.epochs`` when the time budget
    ended training, see ``time_budget``)."""
    from lookalike.shopper.baselines import validation_split
    from lookalike.shopper.evaluate import rank_metrics
    from lookalike.shopper.model import factors_from_model, train_mf
    from lookalike.shopper.training import load_staged
    from lookalike.training.devices import pin_gpu

    pin_gpu()  # the GPU Spark assigned to this trial's task, when there is one
    split, features = load_staged(split_path, features_path)
    val = validation_split(split)
    budget = [] if budget_seconds is None else [time_budget(budget_seconds)]
    model, history = train_mf(cfg, val, item_features=features, callbacks=budget)
    factors = factors_from_model(cfg, model, val)
    return rank_metrics(lambda rows: factors.scores(rows), val, sampled=0) | {
        "epochs": len(history["loss"])
    }


def trial_budget_seconds(settings: Settings, trials: int, parallelism: int) -> float:
    """Each trial's share of the search's time limit (``shopper_tune_minutes``; see
    ``training.budget`` for why a trial needs one)."""
    return trial_share(settings.shopper_tune_minutes * 60, trials, parallelism)


def data_shape(split: Split, visual: bool) -> str:
    """The data as a search sees it: users, items and train pairs each rounded to a power
    of two, and whether items carry visual features. A search is reused while it holds."""
    return (
        f"users~2^{power_of_two(split.n_users)} items~2^{power_of_two(len(split.item_ids))} "
        f"pairs~2^{power_of_two(len(split.train_users))} {'visual' if visual else 'ids'}"
    )


def base_key(base: MFConfig) -> str:
    """A digest of the base configuration: a search around other defaults is another search."""
    return config_digest(base.to_dict())


def searched_params(cfg: MFConfig) -> dict[str, Any]:
    """``cfg``'s values of the searched fields (``sampled`` under softmax only)."""
    out = {k: getattr(cfg, k) for k in SEARCHED}
    if cfg.loss != "softmax":
        out.pop("sampled")
    return out


def tuning_sample(split: Split, max_pairs: int, seed: int) -> Split:
    """The users (drawn at random, all their rows, order kept) whose train pairs add up to
    about ``max_pairs``; the whole split when it is that small. Why: on a large data set a
    trial costs as much as a full training, and a time-limited search would finish none."""
    import numpy as np

    from lookalike.shopper.data import Split

    if len(split.train_users) <= max_pairs:
        return split
    order = np.random.default_rng(seed).permutation(split.n_users)
    counts = np.bincount(split.train_users, minlength=split.n_users)
    take = max(int(np.searchsorted(np.cumsum(counts[order]), max_pairs, side="right")), 1)
    keep = np.sort(order[:take])
    index = np.full(split.n_users, -1, dtype=np.int32)
    index[keep] = np.arange(len(keep), dtype=np.int32)
    rows = index[split.train_users] >= 0
    return Split(
        user_ids=[split.user_ids[i] for i in keep],
        item_ids=split.item_ids,
        train_users=index[split.train_users[rows]],
        train_items=split.train_items[rows],
        train_strength=split.train_strength[rows],
        test_items=split.test_items[keep],
        last_items=split.last_items[keep],
        events=split.events,
    )


def parse_tune(value: str | int) -> int | str:
    """``tune`` as the CLI and the DAG take it: ``"auto"`` or a number of trials >= 0."""
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    if not text.isdigit():
        raise ValueError(f"must be 'auto' or a number of trials >= 0, got {value!r}")
    return int(text)


def tuned_config(
    settings: Settings,
    base: MFConfig,
    tune: str | int,
    *,
    parallelism: int | None = None,
    interactions_version: int | None = None,
    spark: SparkSession | None = None,
) -> tuple[MFConfig, ShopperTuneResult | None]:
    """What `shopper train` trains: ``base`` (``tune`` 0); the best of a new search of
    ``tune`` trials; or (``"auto"``) the best of the latest search that fits this data and
    base, searching ``shopper_tune_trials`` trials when none does."""
    tune = parse_tune(tune)
    if tune == 0:
        return base, None
    auto = tune == AUTO
    result = run_shopper_tuning(
        settings,
        base,
        trials=settings.shopper_tune_trials if auto else int(tune),
        parallelism=parallelism,
        interactions_version=interactions_version,
        spark=spark,
        reuse=auto,
    )
    return base.replace(**result.best_params), result


def run_shopper_tuning(
    settings: Settings,
    base: MFConfig,
    *,
    trials: int,
    parallelism: int | None = None,
    interactions_version: int | None = None,
    spark: SparkSession | None = None,
    reuse: bool = False,
) -> ShopperTuneResult:
    """Search ``trials`` configurations around ``base`` on Spark, on one interactions
    version; returns the best parameters and their validation NDCG@10. With ``reuse``, the
    latest search for the same base and data shape (see ``previous_search``) is returned
    instead when there is one."""
    from lookalike.shopper.training import read_split

    if trials < 1:
        raise ValueError(f"trials: must be >= 1, got {trials}")
    interactions_version, split, space = read_split(settings, interactions_version)
    features = space.vectors if space is not None and base.visual else None
    shape = data_shape(split, features is not None)
    if reuse and (found := previous_search(settings, base, shape, trials)) is not None:
        return found
    split = tuning_sample(split, settings.shopper_tune_max_pairs, base.seed)
    return _search(
        settings,
        base,
        trials,
        parallelism or settings.tune_parallelism,
        spark or _spark(settings),
        (interactions_version, split, features, shape),
    )


def previous_search(
    settings: Settings, base: MFConfig, shape: str, min_trials: int
) -> ShopperTuneResult | None:
    """The latest finished search around ``base`` on data of ``shape`` with at least
    ``min_trials`` trials (one of them finished), younger than ``shopper_retune_days``; None
    when there is none."""
    from lookalike.registry.mlflow_setup import setup_mlflow

    experiment_id = setup_mlflow(settings, settings.shopper_experiment)
    found = latest_search(
        settings.tracking_uri,
        experiment_id,
        shape,
        base_key(base),
        min_trials,
        settings.shopper_retune_days,
    )
    if found is None:
        return None
    metrics, version = found.metrics, found.params.get("interactions", "None")
    return ShopperTuneResult(
        parent_run_id=found.run_id,
        best_params=found.best_params,
        best_sets=as_sets(found.best_params),
        best_val_ndcg_at_10=round(metrics["best_val_ndcg_at_10"], 5),
        trials=found.trials,
        trials_ok=int(metrics.get("trials_ok", 0)),
        interactions_version=None if version == "None" else int(version),
        shape=shape,
        base_val_ndcg_at_10=metrics.get("base_val_ndcg_at_10"),
        reused=True,
    )


def _search(
    settings: Settings,
    base: MFConfig,
    trials: int,
    parallelism: int,
    spark: SparkSession,
    data: tuple[int | None, Split, Any, str],
) -> ShopperTuneResult:
    """One search in a parent MLflow run: the base configuration scored first, then
    ``trials`` Hyperopt trials on SparkTrials; the base is kept unless a trial beats it."""
    import mlflow

    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.shopper.training import staged_inputs

    interactions_version, split, features, shape = data
    experiment_id = setup_mlflow(settings, settings.shopper_experiment)
    budget = trial_budget_seconds(settings, trials, parallelism)
    with (
        mlflow.start_run(run_name=f"tune-v{interactions_version}") as parent,
        staged_inputs(settings, split, features) as (split_path, features_path),
    ):
        tag_search(shape, base_key(base), trials)
        mlflow.log_params(
            {"trials": trials, "parallelism": parallelism, "interactions": interactions_version}
            | {"tuning_users": split.n_users, "tuning_pairs": len(split.train_users)}
            | {"trial_budget_seconds": round(budget)}
            | {f"base_{k}": v for k, v in base.to_dict().items()}
        )
        mlflow.log_dict(SEARCH_SPACE_DOC, "search_space.json")
        runs = SearchRuns(settings.tracking_uri, experiment_id, parent.info.run_id)
        inputs = (split_path, features_path, runs)
        base_score = _score_base(base, inputs)
        log.info(f"searching {trials} trials, {parallelism} at a time, {budget:.0f} s each at most")
        objective = _objective(base, *inputs, budget_seconds=budget)
        search = (objective, trials, parallelism, spark, runs.parent_id)
        try:
            best, score, trials_ok = _best_of_trials(settings, base, base_score, *search)
        finally:
            end_cancelled_trials(runs)
        tag_best(best)
        log_best(best, {"best_val_ndcg_at_10": score, "trials_ok": trials_ok})
        if base_score is not None:
            mlflow.log_metric("base_val_ndcg_at_10", base_score)
    return ShopperTuneResult(
        parent_run_id=runs.parent_id,
        best_params=best,
        best_sets=as_sets(best),
        best_val_ndcg_at_10=round(score, 5),
        trials=trials,
        trials_ok=trials_ok,
        interactions_version=interactions_version,
        shape=shape,
        base_val_ndcg_at_10=None if base_score is None else round(base_score, 5),
    )


def _score_base(base: MFConfig, inputs: tuple[Any, ...]) -> float | None:
    """The base configuration's validation NDCG@10 (on the driver; None: it failed), and its
    progress line."""
    t0 = time.monotonic()
    scored = _objective(base, *inputs, run_name="base")({"loss": searched_params(base)})
    if scored["status"] != "ok":
        log.info(f"base configuration failed: {scored.get('error')}")
        return None
    log.info(
        f"base configuration: val_ndcg_at_10 {-scored['loss']:.4g} in {time.monotonic() - t0:.0f} s"
    )
    return -scored["loss"]


def _best_of_trials(
    settings: Settings,
    base: MFConfig,
    base_score: float | None,
    objective: Objective,
    trials: int,
    parallelism: int,
    spark: SparkSession,
    parent_id: str,
) -> tuple[dict[str, Any], float, int]:
    """(best parameters, their validation NDCG@10, trials that finished): the best trial,
    or the base when it scored at least as well or no trial finished."""
    from lookalike.training.search import spark_search

    try:
        best, score, trials_ok = spark_search(
            objective,
            search_space(base),
            base.seed,
            trials,
            parallelism,
            spark,
            parent_id,
            settings.gpus_per_task,
            timeout_seconds=settings.shopper_tune_minutes * 60,
            metric="val_ndcg_at_10",  # each trial's progress line
        )
    except RuntimeError as e:  # no trial finished (failed, or cut by the time limit)
        if base_score is None:
            raise
        log.warning("shopper search: %s; keeping the base configuration", e)
        best, score, trials_ok = {"loss": base.loss}, -math.inf, 0
    if base_score is not None and base_score >= score:
        return searched_params(base), base_score, trials_ok
    return flatten(best), score, trials_ok


def _spark(settings: Settings) -> SparkSession:
    from lookalike.spark import spark_session

    return spark_session("lookalike-shopper-tune", settings)


def _objective(
    base: MFConfig,
    split_path: str,
    features_path: str | None,
    runs: SearchRuns,
    run_name: str = "trial",
    budget_seconds: float | None = None,
) -> Objective:
    """Hyperopt's objective (run on an executor; the base's score on the driver), a nested
    MLflow run per trial: loss = -validation NDCG@10. ``params`` in the result are the
    trial's point with the epochs it ran (``budget_seconds`` can end it early): what a best
    trial means."""

    def configure(point: dict[str, Any]) -> tuple[MFConfig, dict[str, Any]]:
        cfg = base.replace(**flatten(point))
        return cfg, cfg.to_dict()

    def score(cfg: MFConfig) -> TrialScore:
        m = trial_score(cfg, split_path, features_path, budget_seconds)
        return TrialScore(
            loss=-m["ndcg_at_10"],
            metrics={
                "val_ndcg_at_10": m["ndcg_at_10"],
                "val_hr_at_10": m["hr_at_10"],
                "epochs_trained": m["epochs"],
            },
            tags=cut_tags(m["epochs"], cfg.epochs, budget_seconds),
            params=searched_params(cfg) | {"epochs": int(m["epochs"])},
        )

    return nested_trial(runs, configure, score, run_name=run_name)
