"""The Spark hyperparameter search both products tune with: Hyperopt's TPE over SparkTrials.

Hyperopt is in maintenance mode; only this module knows it exists. Each product gives an
objective (one nested MLflow run per trial, run on an executor) and its search space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_search(
    objective: Callable[[dict[str, Any]], dict[str, Any]],
    space: dict[str, Any],
    seed: int,
    trials: int,
    parallelism: int,
    spark: SparkSession,
    parent_id: str,
    gpus_per_task: float = 0.0,
    timeout_seconds: float | None = None,
    metric: str = "val_map_at_r",
) -> tuple[dict[str, Any], float, int]:
    """TPE over ``space`` with SparkTrials; returns (best parameters, best validation score
    (= -loss), trials that succeeded). All trials failing is an error. After
    ``timeout_seconds`` SparkTrials starts no more trials and cancels running ones (the
    best finished one wins). An objective may return the ``params`` its trial really used
    (the shopper's, cut by a time budget, ran fewer epochs); they are returned for the best
    trial instead of its point of ``space``. The shopper model's search uses it too. Every
    trial that ends logs one line on the driver (``metric`` = -loss, see ``TrialProgress``)."""
    import numpy as np
    from hyperopt import STATUS_OK, SparkTrials, fmin, space_eval, tpe
    from hyperopt.exceptions import AllTrialsFailed

    from lookalike.training.progress import TrialProgress

    spark_trials = SparkTrials(
        parallelism=parallelism,
        spark_session=spark,
        resource_profile=gpu_resource_profile(gpus_per_task),
        timeout=timeout_seconds,
    )
    progress = TrialProgress(trials, metric)
    try:
        best = fmin(
            objective,
            space,
            algo=tpe.suggest,
            max_evals=trials,
            trials=spark_trials,
            rstate=np.random.default_rng(seed),
            show_progressbar=False,
            early_stop_fn=progress,  # on the driver, as trials end; never stops the search
        )
    except AllTrialsFailed:
        best = None
    except Exception:  # the time limit cancelled every trial: fmin has no argmin
        if any(t["result"].get("status") == STATUS_OK for t in spark_trials.trials):
            raise
        best = None
    finally:
        progress.report(spark_trials.trials)  # the last ones, and failures since the last ok
    ok = [t for t in spark_trials.trials if t["result"].get("status") == STATUS_OK]
    if not ok or best is None:
        errors = {t["result"].get("error", "cancelled") for t in spark_trials.trials}
        errors = errors or {"the time limit cancelled every trial"}
        raise RuntimeError(
            f"no tuning trial of {trials} finished ({'; '.join(sorted(errors))[:500]}); "
            f"see the nested runs of {parent_id}"
        )
    top = min(ok, key=lambda t: t["result"]["loss"])["result"]
    return top.get("params") or space_eval(space, best), -top["loss"], len(ok)


def gpu_resource_profile(gpus_per_task: float) -> Any:
    """A Spark ResourceProfile asking ``gpus_per_task`` GPUs for each trial's task (None: the
    session's defaults, CPU only), so SparkTrials schedules trials on GPU executors even in
    a session whose default profile asks for none."""
    if gpus_per_task <= 0:
        return None
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    return (
        ResourceProfileBuilder()
        .require(TaskResourceRequests().cpus(1).resource("gpu", gpus_per_task))
        .build
    )
