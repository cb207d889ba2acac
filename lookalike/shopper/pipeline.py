"""Train -> evaluate (with baselines) -> bundle -> register as ``challenger``, as one MLflow run.

Reads the interactions table at one recorded Delta version, splits leave-last-out, trains MF in
process or data-parallel with Horovod on Spark (the encoder's mechanism: each rank its shard,
``hvd.DistributedOptimizer`` around the optimizer it trains with, rank 0's weights broadcast),
evaluates MF, popularity and Spark ML ALS the same way, and registers the bundle.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.config import Settings
from lookalike.shopper.model import MFConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _log(msg: str) -> None:
    print(f"[shopper] {msg}", file=sys.stderr, flush=True)


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
    from lookalike.model.distributed import weights_checksum
    from lookalike.shopper.data import Split
    from lookalike.shopper.model import factors_from_model, train_mf

    hvd_callbacks.K = tf.keras.backend  # Horovod 0.28 + tf-keras (see model/distributed.py)
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    split = Split.load(Path(split_path))
    features = np.load(features_path) if features_path else None
    client = None
    if rank == 0 and run_id and tracking_uri:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)

    def epoch_end(epoch: int, logs: dict[str, float]) -> None:
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
        "factors": factors_from_model(cfg, model) if rank == 0 else None,
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
) -> dict[str, Any]:
    import mlflow
    from deltalake import DeltaTable
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    from lookalike.registry.aliases import INTERACTIONS_VERSION_TAG
    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.shopper.data import prepare
    from lookalike.shopper.evaluate import factor_scorer, popularity_scorer, rank_metrics
    from lookalike.shopper.interactions import read_interactions
    from lookalike.shopper.items import load_item_space
    from lookalike.shopper.model import factors_from_model, train_mf
    from lookalike.shopper.recommender import build_bundle
    from lookalike.shopper.registry import log_and_register

    path = settings.interactions_path
    if interactions_version is None and DeltaTable.is_deltatable(str(path)):
        interactions_version = DeltaTable(str(path)).version()
    events = read_interactions(path, interactions_version)
    space = None
    if DeltaTable.is_deltatable(str(settings.catalog_path)):
        space = load_item_space(settings)
    split = prepare(events, space.item_ids if space is not None else None)
    # visual vectors row-aligned with the split's items (prepare keeps the space's order)
    features = space.vectors if space is not None else None
    _log(
        f"interactions v{interactions_version}: {split.events} events, {split.n_users} users, "
        f"{split.n_items} items, {len(split.train_users)} train pairs"
    )
    setup_mlflow(settings, settings.shopper_experiment)
    with mlflow.start_run(run_name=f"mf-v{interactions_version}") as run:
        source = DeltaDatasetSource(path=str(path), delta_table_version=interactions_version)
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
        t0 = time.monotonic()
        if horovod > 0:
            from lookalike.model.distributed import check_consistent, run_ranks

            with tempfile.TemporaryDirectory(dir=settings.home) as tmp:
                split_path = Path(tmp) / "split.npz"
                split.save(split_path)
                features_path = None
                if features is not None:
                    features_path = str(Path(tmp) / "features.npy")
                    np.save(features_path, features)
                results = run_ranks(
                    spark,
                    rank_main,
                    (cfg, str(split_path), settings.tracking_uri, run.info.run_id, features_path),
                    horovod,
                )
            results = check_consistent(results)
            factors, history = results[0]["factors"], results[0]["history"]
        else:

            def epoch_end(epoch: int, logs: dict[str, float]) -> None:
                mlflow.log_metrics({f"train_{k}": v for k, v in logs.items()}, step=epoch)

            model, history = train_mf(cfg, split, epoch_end=epoch_end, item_features=features)
            factors = factors_from_model(cfg, model)
        train_seconds = time.monotonic() - t0
        _log(f"trained in {train_seconds:.1f} s, final loss {history['loss'][-1]:.4f}")
        metrics = rank_metrics(lambda rows: factors.scores(rows), split, max_users=eval_users)
        results_all: dict[str, dict[str, float]] = {"mf": metrics}
        results_all["popularity"] = rank_metrics(
            popularity_scorer(split), split, max_users=eval_users
        )
        if baselines:
            from lookalike.shopper.baselines import als_factors

            if spark is None:
                from lookalike.spark import spark_session

                spark = spark_session("lookalike-shopper")
            t1 = time.monotonic()
            users, items = als_factors(spark, split)
            results_all["als"] = rank_metrics(
                factor_scorer(users, items), split, max_users=eval_users
            )
            results_all["als"]["train_seconds"] = time.monotonic() - t1
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_metric("train_seconds", train_seconds)
        for name, m in results_all.items():
            mlflow.log_metrics({f"{name}_{k}": float(v) for k, v in m.items()})
        for name, m in results_all.items():
            _log(f"{name:>10}: HR@10 {m['hr_at_10']:.4f}  NDCG@10 {m['ndcg_at_10']:.4f}")
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
                _log(f"registered {settings.shopper_model_name} v{version} as challenger")
    return {
        "run_id": run.info.run_id,
        "model_version": version,
        "interactions_version": interactions_version,
        "users": split.n_users,
        "items": split.n_items,
        "train_pairs": len(split.train_users),
        "train_seconds": round(train_seconds, 1),
        "metrics": results_all,
        "index_recall_at_10": manifest["index"]["recall_at_10"],
    }
