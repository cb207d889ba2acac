"""Data-parallel training with Horovod on Spark (``horovod.spark.run``).

Every rank reads its own shard of the training split (every size-th item), starts from rank
0's weights (broadcast), and compiles with ``hvd.DistributedOptimizer`` wrapping the SAME
optimizer it trains with, so gradients are averaged and the trainable weights stay identical.
State that no gradient touches (batch norm's moving mean and variance) is updated by each rank
from its own shard; it is averaged across ranks once, after training
(:func:`average_non_trainable`), which works for every backbone, including Keras
applications, and leaves a plain model to save. Rank 0 logs per-epoch metrics to the driver's
MLflow run and returns the trained weights; the driver refuses ranks that still disagree
(:func:`check_consistent`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.similarity.config import DataRef, TrainConfig
from lookalike.training.horovod import (
    average_non_trainable,
    check_consistent,
    run_ranks,
    weights_checksum,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def rank_main(
    cfg: TrainConfig,
    ref: DataRef,
    tracking_uri: str | None,
    run_id: str | None,
    sync_batch_norm: bool = False,
) -> dict[str, Any]:
    """What one Horovod rank runs (inside a Spark task).

    ``sync_batch_norm`` (``convnet`` only; measured in ``bench/data_parallel.py``, not the default)
    normalises with the statistics of all ranks' batches at every step instead of averaging
    the moving statistics once at the end.
    """
    import time

    import horovod.tensorflow as hvd_tf
    import horovod.tensorflow.keras as hvd
    import horovod.tensorflow.keras.callbacks as hvd_callbacks
    import tensorflow as tf

    import lookalike  # noqa: F401  (legacy Keras switch before TensorFlow loads)

    # Horovod 0.28's Keras callbacks import Keras 3's backend; tfsim trains on tf-keras.
    hvd_callbacks.K = tf.keras.backend
    from lookalike.similarity.data import load_training_items
    from lookalike.similarity.model import train_encoder
    from lookalike.training.devices import pin_gpu

    hvd.init()
    pin_gpu(hvd.local_rank())  # one GPU per rank on a GPU host; nothing on a CPU-only one
    rank, size = hvd.rank(), hvd.size()
    shard = load_training_items(cfg, ref, shard=(rank, size))
    callbacks = _rank_callbacks(hvd, rank, size, cfg, tracking_uri, run_id)
    # Same number of examples per epoch as one process: each rank does 1/size of the steps
    # with a size-times larger effective batch, so the learning rate scales with size.
    rank_cfg = cfg.replace(steps_per_epoch=max(1, cfg.n_steps // size))
    t0 = time.monotonic()
    model, history = train_encoder(
        rank_cfg,
        shard,
        wrap_optimizer=hvd.DistributedOptimizer,
        learning_rate_scale=float(size),
        callbacks=callbacks,
        batch_norm=hvd_tf.SyncBatchNormalization if sync_batch_norm else None,
    )
    train_seconds = time.monotonic() - t0
    averaged = average_non_trainable(model.non_trainable_variables)
    weights = model.get_weights()
    return {
        "rank": rank,
        "size": size,
        "shard_items": len(shard),
        "averaged_variables": averaged,
        "train_seconds": train_seconds,
        "images": rank_cfg.n_epochs * rank_cfg.n_steps * rank_cfg.batch_size,
        "checksum": weights_checksum(weights),
        "weights": weights if rank == 0 else None,
        "history": history,
    }


def _rank_callbacks(
    hvd: Any, rank: int, size: int, cfg: TrainConfig, tracking_uri: str | None, run_id: str | None
) -> list[Any]:
    """A rank's Keras callbacks: rank 0's weights broadcast, metrics averaged; rank 0 also
    logs every epoch to the driver's MLflow run and one progress line per epoch on its
    stderr (Horovod prefixes it ``[0]<stderr>:``; a local master writes it to the driver's)."""
    from lookalike.training.progress import epoch_progress, to_stderr

    callbacks: list[Any] = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
    ]
    if rank == 0 and run_id and tracking_uri:
        callbacks.append(_epoch_logger(tracking_uri, run_id))
    if rank == 0:
        callbacks.append(epoch_progress(cfg.n_epochs, to_stderr, f"epoch (rank 0 of {size})"))
    return callbacks


def _epoch_logger(tracking_uri: str, run_id: str) -> Any:
    """A Keras callback that logs every epoch's metrics to the driver's MLflow run (rank 0's
    only: the ranks' metrics are averaged already)."""
    import tensorflow as tf
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)

    class _Rank0Logger(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for k, v in (logs or {}).items():
                client.log_metric(run_id, f"train_{k}", float(v), step=epoch)

    return _Rank0Logger()


def horovod_run(
    spark: SparkSession | None,
    cfg: TrainConfig,
    ref: DataRef,
    num_proc: int,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    sync_batch_norm: bool = False,
) -> list[dict[str, Any]]:
    """Run ``rank_main`` on ``num_proc`` Spark tasks; returns every rank's result."""
    from lookalike.similarity.data import fit_to_catalog

    cfg = fit_to_catalog(cfg, ref.table_path, ref.version)
    args = (cfg, ref, tracking_uri, run_id, sync_batch_norm)
    return run_ranks(spark, rank_main, args, num_proc)


def horovod_train(
    spark: SparkSession | None,
    cfg: TrainConfig,
    ref: DataRef,
    num_proc: int,
    tracking_uri: str | None,
    run_id: str | None,
) -> tuple[list[np.ndarray], dict[str, list[float]]]:
    """Train on ``num_proc`` Horovod ranks; returns rank 0's weights and loss history once every
    rank agrees on them."""
    results = check_consistent(horovod_run(spark, cfg, ref, num_proc, tracking_uri, run_id))
    return results[0]["weights"], results[0]["history"]
