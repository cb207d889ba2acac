"""Train -> evaluate (with baselines) -> bundle -> register as ``challenger``, as one MLflow run.

Reads the interactions table at one recorded Delta version, splits leave-last-out, trains MF in
process or data-parallel with Horovod on Spark (the encoder's mechanism: each rank its shard,
``hvd.DistributedOptimizer`` around the optimizer it trains with, rank 0's weights broadcast),
evaluates MF, popularity and Spark ML ALS the same way, and registers the bundle.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike import storage
from lookalike.config import Settings
from lookalike.shopper.model import MFConfig
from lookalike.training.progress import epoch_lines, to_stderr

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lookalike.shopper.data import Split
    from lookalike.shopper.factors import Factors
    from lookalike.shopper.items import ItemSpace


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShopperTrainResult:
    """What a shopper training run produced: its MLflow run, the registered version (None when
    not registered), the interactions version and split it trained on, and the metrics of MF
    beside its baselines (``mf``, ``popularity``, ``als`` when run)."""

    run_id: str
    model_version: str | None
    interactions_version: int | None
    users: int
    items: int
    train_pairs: int
    train_seconds: float
    metrics: dict[str, dict[str, float]]
    index_recall_at_10: float

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the command's output, a job's summary file)."""
        return asdict(self)


def rank_main(
    cfg: MFConfig,
    split_path: str,
    tracking_uri: str | None,
    run_id: str | None,
    features_path: str | None = None,
) -> dict[str, Any]:
    """One Horovod rank (a Spark task): train on its shard of the positives."""
    import horovod.tensorflow.keras as hvd
    import horovod.tensorflow.keras.callbacks as hvd_callbacks
    import tensorflow as tf

    import lookalike  # noqa: F401
    from lookalike.shopper.model import factors_from_model, train_mf
    from lookalike.training.horovod import weights_checksum

    hvd_callbacks.K = tf.keras.backend  # Horovod 0.28 + tf-keras (see model/distributed.py)
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    split, features = load_staged(split_path, features_path)
    client = None
    if rank == 0 and run_id and tracking_uri:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)

    progress = epoch_lines(cfg.epochs, to_stderr) if rank == 0 else None

    def epoch_end(epoch: int, logs: dict[str, float]) -> None:
        if progress is not None:
            progress(epoch, logs)
        if client is not None:
            for k, v in logs.items():
                client.log_metric(run_id, f"train_{k}", v, step=epoch)

    model, history = train_mf(
        cfg,
        split,
        shard=(rank, size),
        wrap_optimizer=hvd.DistributedOptimizer,
        learning_rate_scale=float(size),
        callbacks=[
            hvd.callbacks.BroadcastGlobalVariablesCallback(0),
            hvd.callbacks.MetricAverageCallback(),
        ],
        epoch_end=epoch_end,
        item_features=features,
    )
    weights = model.get_weights()
    return {
        "rank": rank,
        "checksum": weights_checksum(weights),
        "factors": factors_from_model(cfg, model, split) if rank == 0 else None,
        "history": history,
    }


def train_shopper(
    settings: Settings,
    cfg: MFConfig,
    *,
    interactions_version: int | None = None,
    horovod: int = 0,
    baselines: bool = True,
    register: bool = True,
    eval_users: int | None = None,
    spark: SparkSession | None = None,
    tuned_by: str | None = None,
) -> ShopperTrainResult:
    """Train, evaluate (MF beside popularity and, with ``baselines``, ALS), build the bundle
    and (``register``) register it as ``challenger``, all as one MLflow run on one recorded
    interactions version. ``tuned_by``: the Hyperopt parent run the configuration came from
    (logged). Returns the result whose ``to_dict()`` the CLI prints and the DAG reads."""
    import mlflow

    from lookalike.registry.mlflow_setup import setup_mlflow

    interactions_version, split, space = read_split(settings, interactions_version)
    # visual vectors row-aligned with the split's items (prepare keeps the space's order)
    features = space.vectors if space is not None else None
    log.info(
        f"interactions v{interactions_version}: {split.events} events, {split.n_users} users, "
        f"{split.n_items} items, {len(split.train_users)} train pairs"
    )
    setup_mlflow(settings, settings.shopper_experiment)
    with mlflow.start_run(run_name=f"mf-v{interactions_version}") as run:
        _log_inputs(settings, cfg, interactions_version, horovod, split, space)
        if tuned_by:
            mlflow.set_tag("tuned_by", tuned_by)
        t0 = time.monotonic()
        factors, history = _train(
            settings, cfg, split, features, horovod=horovod, spark=spark, run_id=run.info.run_id
        )
        train_seconds = time.monotonic() - t0
        log.info(f"trained in {train_seconds:.1f} s, final loss {history['loss'][-1]:.4f}")
        results_all = _evaluate(factors, split, baselines, eval_users, spark)
        metrics = results_all["mf"]
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_metric("train_seconds", train_seconds)
        for name, m in results_all.items():
            mlflow.log_metrics({f"{name}_{k}": float(v) for k, v in m.items()})
        for name, m in results_all.items():
            log.info(f"{name:>10}: HR@10 {m['hr_at_10']:.4f}  NDCG@10 {m['ndcg_at_10']:.4f}")
        manifest, version = _bundle(
            settings, cfg, factors, split, space, interactions_version, metrics, register
        )
    return ShopperTrainResult(
        run_id=run.info.run_id,
        model_version=version,
        interactions_version=interactions_version,
        users=split.n_users,
        items=split.n_items,
        train_pairs=len(split.train_users),
        train_seconds=round(train_seconds, 1),
        metrics=results_all,
        index_recall_at_10=manifest["index"]["recall_at_10"],
    )


def read_split(
    settings: Settings, interactions_version: int | None
) -> tuple[int | None, Split, ItemSpace | None]:
    """(the interactions version read, its leave-last-out split, the catalogue's item space
    or None): the latest version unless one is given; the split keeps the space's items."""
    from lookalike.catalog.table import is_table, table_version
    from lookalike.shopper.data import prepare
    from lookalike.shopper.interactions import read_interactions
    from lookalike.shopper.items import load_item_space

    path = settings.interactions_uri
    if interactions_version is None:
        interactions_version = table_version(path)
    events = read_interactions(path, interactions_version)
    space = None
    if is_table(settings.catalog_uri):
        space = load_item_space(settings)
    split = prepare(events, space.item_ids if space is not None else None)
    return interactions_version, split, space


def _log_inputs(
    settings: Settings,
    cfg: MFConfig,
    interactions_version: int | None,
    horovod: int,
    split: Split,
    space: ItemSpace | None,
) -> None:
    """The run's dataset (the interactions table at its version) and parameters."""
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    path = settings.interactions_uri
    source = DeltaDatasetSource(path=path, delta_table_version=interactions_version)
    mlflow.log_input(
        MetaDataset(source=source, name=f"interactions@v{interactions_version}"),
        context="training",
    )
    mlflow.log_params(
        cfg.to_dict()
        | {
            "horovod": horovod,
            "interactions_version": interactions_version,
            "users": split.n_users,
            "items": split.n_items,
            "train_pairs": len(split.train_users),
            "item_space": space.source if space is not None else "none",
        }
    )


def _train(
    settings: Settings,
    cfg: MFConfig,
    split: Split,
    features: np.ndarray | None,
    *,
    horovod: int,
    spark: SparkSession | None,
    run_id: str,
) -> tuple[Factors, dict[str, list[float]]]:
    """(factors, loss history): in process, or data-parallel on ``horovod`` Spark tasks
    (the split and features go through the store's staging, which every host reaches; the
    ranks must agree)."""
    import mlflow

    from lookalike.shopper.model import factors_from_model, train_mf

    if horovod > 0:
        from lookalike.training.horovod import check_consistent, run_ranks

        with staged_inputs(settings, split, features) as (split_path, features_path):
            results = run_ranks(
                spark,
                rank_main,
                (cfg, split_path, settings.tracking_uri, run_id, features_path),
                horovod,
            )
        results = check_consistent(results)
        return results[0]["factors"], results[0]["history"]

    progress = epoch_lines(cfg.epochs)

    def epoch_end(epoch: int, logs: dict[str, float]) -> None:
        progress(epoch, logs)
        mlflow.log_metrics({f"train_{k}": v for k, v in logs.items()}, step=epoch)

    model, history = train_mf(cfg, split, epoch_end=epoch_end, item_features=features)
    return factors_from_model(cfg, model, split), history


@contextmanager
def staged_inputs(
    settings: Settings, split: Split, features: np.ndarray | None
) -> Iterator[tuple[str, str | None]]:
    """(split URI, features URI or None) under the store's staging, which every host reaches
    (Horovod ranks, Hyperopt trials); removed on the way out."""
    work = storage.join(settings.staging_uri, f"shopper-{uuid.uuid4().hex[:12]}")
    try:
        split_path = storage.join(work, "split.npz")
        buffer = io.BytesIO()
        split.save(buffer)
        storage.write_bytes(split_path, buffer.getvalue())
        features_path = None
        if features is not None:
            features_path = storage.join(work, "features.npy")
            buffer = io.BytesIO()
            np.save(buffer, features)
            storage.write_bytes(features_path, buffer.getvalue())
        yield split_path, features_path
    finally:
        storage.remove_tree(work)


def load_staged(split_path: str, features_path: str | None) -> tuple[Split, np.ndarray | None]:
    """What ``staged_inputs`` wrote, read back (on an executor)."""
    from lookalike.shopper.data import Split

    split = Split.load(io.BytesIO(storage.read_bytes(split_path)))
    features = np.load(io.BytesIO(storage.read_bytes(features_path))) if features_path else None
    return split, features


def _evaluate(
    factors: Factors,
    split: Split,
    baselines: bool,
    eval_users: int | None,
    spark: SparkSession | None,
) -> dict[str, dict[str, float]]:
    """Metrics of MF (``mf``), popularity and, with ``baselines``, Spark ML ALS (both
    trained here, their training seconds recorded, scoring not included), all on the same
    held-out events."""
    from lookalike.shopper.evaluate import factor_scorer, popularity_scorer, rank_metrics

    metrics = rank_metrics(lambda rows: factors.scores(rows), split, max_users=eval_users)
    results_all: dict[str, dict[str, float]] = {"mf": metrics}
    t0 = time.monotonic()
    popularity = popularity_scorer(split)
    seconds = time.monotonic() - t0
    results_all["popularity"] = rank_metrics(popularity, split, max_users=eval_users)
    results_all["popularity"]["train_seconds"] = seconds
    if baselines:
        from lookalike.shopper.baselines import als_factors

        if spark is None:
            from lookalike.spark import spark_session

            spark = spark_session("lookalike-shopper")
        t1 = time.monotonic()
        users, items = als_factors(spark, split)
        seconds = time.monotonic() - t1
        results_all["als"] = rank_metrics(factor_scorer(users, items), split, max_users=eval_users)
        results_all["als"]["train_seconds"] = seconds
    return results_all


def _bundle(
    settings: Settings,
    cfg: MFConfig,
    factors: Factors,
    split: Split,
    space: ItemSpace | None,
    interactions_version: int | None,
    metrics: dict[str, float],
    register: bool,
) -> tuple[dict[str, Any], str | None]:
    """Build the bundle (recall-checked) in a temporary folder and, with ``register``,
    register it as ``challenger``. Returns (bundle manifest, model version or None)."""
    import mlflow

    from lookalike.registry.aliases import INTERACTIONS_VERSION_TAG
    from lookalike.shopper.bundle import build_bundle
    from lookalike.shopper.registry import log_and_register

    version = None
    with tempfile.TemporaryDirectory(dir=settings.home) as tmp:
        bundle_dir = Path(tmp) / "bundle"
        manifest = build_bundle(
            bundle_dir,
            factors,
            split,
            space,
            config=cfg.to_dict(),
            interactions_version=interactions_version,
            metrics=metrics,
            min_recall=settings.index_min_recall,
            recall_tolerance=settings.recall_tolerance,
        )
        mlflow.log_metric("index_recall_at_10", manifest["index"]["recall_at_10"])
        if register:
            tags = {INTERACTIONS_VERSION_TAG: str(interactions_version)}
            version = log_and_register(settings, bundle_dir, tags)
            log.info(f"registered {settings.shopper_model_name} v{version} as challenger")
    return manifest, version
