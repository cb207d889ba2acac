"""Horovod helpers every data-parallel training uses: a weights checksum ranks can compare,
averaging of non-trainable state across ranks, and the driver's consistency check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def weights_checksum(weights: list[np.ndarray]) -> float:
    """Sum of all weights: ranks that ended with the same weights agree on it (cheap to send)."""
    return float(sum(np.asarray(w, dtype=np.float64).sum() for w in weights))


def average_non_trainable(variables: list[Any]) -> int:
    """Replace every floating-point variable by its mean over the Horovod ranks.

    Meant for non-trainable state (batch norm statistics): each rank's moving averages saw
    only its shard, so the mean over ranks is the statistic of the whole data (the spread
    between shards' means is ignored, as synchronised batch norm would ignore it too).
    Returns how many variables were averaged. Every rank must call it with the same list.
    """
    import horovod.tensorflow as hvd_tf

    done = 0
    for i, var in enumerate(variables):
        if not var.dtype.is_floating:
            continue
        var.assign(hvd_tf.allreduce(var.value(), op=hvd_tf.Average, name=f"non_trainable.{i}"))
        done += 1
    return done


def check_consistent(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranks' results sorted by rank; refuses ranks that ended with different weights."""
    results = sorted(results, key=lambda r: r["rank"])
    checksums = {round(r["checksum"], 3) for r in results}
    if len(checksums) != 1:
        raise RuntimeError(f"Horovod ranks ended with different weights: {sorted(checksums)}")
    return results


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
