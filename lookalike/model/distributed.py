"""Data-parallel training with Horovod on Spark (``horovod.spark.run``).

Every rank reads its own shard of the training split (every size-th item), starts from rank
0's weights (broadcast), and compiles with ``hvd.DistributedOptimizer`` wrapping the SAME
optimizer it trains with, so gradients are averaged. Rank 0 logs per-epoch metrics to the
driver's MLflow run and returns the trained weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.model.config import DataRef, TrainConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def weights_checksum(weights: list[np.ndarray]) -> float:
    return float(sum(np.asarray(w, dtype=np.float64).sum() for w in weights))


def rank_main(
    cfg: TrainConfig, ref: DataRef, tracking_uri: str | None, run_id: str | None
) -> dict[str, Any]:
    """What one Horovod rank runs (inside a Spark task)."""
    import horovod.tensorflow.keras as hvd
    import horovod.tensorflow.keras.callbacks as hvd_callbacks
    import tensorflow as tf

    import lookalike  # noqa: F401  (legacy Keras switch before TensorFlow loads)

    # Horovod 0.28's Keras callbacks import Keras 3's backend; tfsim trains on tf-keras.
    hvd_callbacks.K = tf.keras.backend
    from lookalike.model.data import load_training_items
    from lookalike.model.encoder import train_encoder

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    shard = load_training_items(cfg, ref, shard=(rank, size))
    callbacks: list[Any] = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
    ]
    if rank == 0 and run_id and tracking_uri:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)

        class _Rank0Logger(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                for k, v in (logs or {}).items():
                    client.log_metric(run_id, f"train_{k}", float(v), step=epoch)

        callbacks.append(_Rank0Logger())
    # Same number of examples per epoch as one process: each rank does 1/size of the steps
    # with a size-times larger effective batch, so the learning rate scales with size.
    rank_cfg = cfg.replace(steps_per_epoch=max(1, cfg.steps_per_epoch // size))
    model, history = train_encoder(
        rank_cfg,
        shard,
        wrap_optimizer=hvd.DistributedOptimizer,
        learning_rate_scale=float(size),
        callbacks=callbacks,
    )
    weights = model.get_weights()
    return {
        "rank": rank,
        "size": size,
        "shard_items": len(shard),
        "checksum": weights_checksum(weights),
        "weights": weights if rank == 0 else None,
        "history": history,
    }


def horovod_run(
    spark: SparkSession | None,
    cfg: TrainConfig,
    ref: DataRef,
    num_proc: int,
    tracking_uri: str | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Run ``rank_main`` on ``num_proc`` Spark tasks; returns every rank's result."""
    return run_ranks(spark, rank_main, (cfg, ref, tracking_uri, run_id), num_proc)


def run_ranks(
    spark: SparkSession | None, fn: Any, args: tuple[Any, ...], num_proc: int
) -> list[Any]:
    """``fn(*args)`` on ``num_proc`` Horovod ranks, each a task of this Spark application."""
    import horovod.spark

    if spark is None:
        from lookalike.spark import spark_session

        spark = spark_session("lookalike-train")
    if num_proc > spark.sparkContext.defaultParallelism:
        raise ValueError(
            f"num_proc: {num_proc} Horovod processes need as many Spark task slots, "
            f"the master offers {spark.sparkContext.defaultParallelism}"
        )
    return horovod.spark.run(fn, args=args, num_proc=num_proc, use_gloo=True, verbose=0)


def horovod_train(
    spark: SparkSession | None,
    cfg: TrainConfig,
    ref: DataRef,
    num_proc: int,
    tracking_uri: str | None,
    run_id: str | None,
) -> tuple[list[np.ndarray], dict[str, list[float]]]:
    results = sorted(
        horovod_run(spark, cfg, ref, num_proc, tracking_uri, run_id), key=lambda r: r["rank"]
    )
    checksums = {round(r["checksum"], 3) for r in results}
    if len(checksums) != 1:
        raise RuntimeError(f"Horovod ranks ended with different weights: {sorted(checksums)}")
    return results[0]["weights"], results[0]["history"]
