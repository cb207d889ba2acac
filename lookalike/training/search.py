"""The Spark hyperparameter search both products tune with: Hyperopt's TPE over SparkTrials,
each trial a nested MLflow run under the search's parent run.

Hyperopt is in maintenance mode; only the search spaces and this module know it exists.
Each product gives its search space and a trial (build a configuration from a point, score
it); how a trial is recorded (``nested_trial``), how the best is logged on the parent
(``log_best``), and what a time limit leaves behind (``end_cancelled_trials``) are the same
for both. The per-trial time budget is in ``budget``, the reuse of an earlier search in
``reuse``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: A product's configuration, built from a point of the space and handed to its score.
Config = TypeVar("Config")
Objective = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class SearchRuns:
    """Where a search records its trials: the tracking server, the experiment and the parent
    run each trial nests under. Plain strings: it travels to the executors with the objective."""

    tracking_uri: str
    experiment_id: str
    parent_id: str


@dataclass(frozen=True)
class TrialScore:
    """What one trial measured: Hyperopt's ``loss`` (-the validation score), the ``metrics``
    and ``tags`` of its nested run, the ``params`` it really ran (``spark_search`` returns
    them for the best trial; None: its point of the space) and ``extra`` result keys."""

    loss: float
    metrics: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def result(self) -> dict[str, Any]:
        """Hyperopt's result of a trial that finished."""
        from hyperopt import STATUS_OK

        ran = {} if self.params is None else {"params": self.params}
        return {"loss": self.loss, "status": STATUS_OK} | ran | dict(self.extra)


def nested_trial(
    runs: SearchRuns,
    configure: Callable[[dict[str, Any]], tuple[Config, Mapping[str, Any]]],
    score: Callable[[Config], TrialScore],
    *,
    run_name: str = "trial",
    detailed_errors: bool = True,
) -> Objective:
    """Hyperopt's objective, run on an executor: one nested MLflow run per trial under
    ``runs.parent_id``, with the parameters ``configure`` gives for the point, then the
    ``score`` of its configuration. A failing trial is marked FAILED and reported to Hyperopt
    instead of ending the search. ``detailed_errors``: the error carries the exception's type
    and is tagged ``error`` on the run (False: the message alone, untagged, as the encoder's
    trials always recorded it)."""

    def objective(point: dict[str, Any]) -> dict[str, Any]:
        from hyperopt import STATUS_FAIL
        from mlflow import MlflowClient

        import lookalike  # noqa: F401  (runs on an executor: legacy Keras switch first)

        client = MlflowClient(runs.tracking_uri)
        run_id = client.create_run(
            runs.experiment_id,
            tags={"mlflow.parentRunId": runs.parent_id, "mlflow.runName": run_name},
        ).info.run_id
        try:
            cfg, params = configure(point)
            for k, v in params.items():
                client.log_param(run_id, k, v)
            scored = score(cfg)
        except Exception as e:
            error = f"{type(e).__name__}: {e}" if detailed_errors else str(e)
            if detailed_errors:
                client.set_tag(run_id, "error", error[:5000])
            client.set_terminated(run_id, "FAILED")
            return {"status": STATUS_FAIL, "error": error}
        for k, v in scored.metrics.items():
            client.log_metric(run_id, k, v)
        for k, v in scored.tags.items():
            client.set_tag(run_id, k, v)
        client.set_terminated(run_id)
        return scored.result()

    return objective


def log_best(best: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """On the active (parent) run: the best parameters as ``best_<name>`` params and the
    search's metrics (its best score, ``trials_ok``: what ``reuse.latest_search`` reads)."""
    import mlflow

    mlflow.log_params({f"best_{k}": v for k, v in best.items()})
    mlflow.log_metrics(dict(metrics))


def end_cancelled_trials(runs: SearchRuns) -> None:
    """Mark KILLED the nested runs a search's time limit cancelled: their objective never
    got to end them, and a run left RUNNING forever misleads whoever reads the registry."""
    from mlflow import MlflowClient

    client = MlflowClient(runs.tracking_uri)
    running = f"tags.`mlflow.parentRunId` = '{runs.parent_id}' and attributes.status = 'RUNNING'"
    for run in client.search_runs([runs.experiment_id], filter_string=running):
        client.set_terminated(run.info.run_id, "KILLED")


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
