"""The shared Spark search, without Spark: a trial's nested MLflow run (ok, failed, cut by
its time budget), the search over Hyperopt's in-process ``Trials`` in place of SparkTrials,
the cancelled trials a time limit leaves RUNNING, and which earlier search a reuse finds by
its tags (a real MLflow store each)."""

from __future__ import annotations

from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from lookalike.config import Settings
from lookalike.registry.mlflow_setup import setup_mlflow
from lookalike.training import budget, reuse, search
from lookalike.training.search import SearchRuns, TrialScore, nested_trial


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, str]:
    """One MLflow store for the module (a new SQLite store costs seconds): its tracking URI
    and an experiment."""
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    return settings.tracking_uri, setup_mlflow(settings, "search-test")


@pytest.fixture
def parent(store):
    """A search's parent run (active while the test runs) and where its trials go."""
    tracking_uri, experiment_id = store
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name="tune") as run:
        yield SearchRuns(tracking_uri, experiment_id, run.info.run_id)


def _children(runs: SearchRuns) -> list[Any]:
    return MlflowClient(runs.tracking_uri).search_runs(
        [runs.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{runs.parent_id}'"
    )


def _configure(point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if point["x"] < 0:
        raise ValueError(f"x must be >= 0, got {point['x']}")
    return point, {"x": point["x"], "fixed": "yes"}


def _score(cfg: dict[str, Any]) -> TrialScore:
    score = 1.0 - (cfg["x"] - 3) ** 2 / 100
    return TrialScore(
        loss=-score,
        metrics={"val_score": score},
        tags=budget.cut_tags(2 if cfg["x"] > 5 else 4, 4, 60.0),
        params={"x": cfg["x"], "epochs": 2 if cfg["x"] > 5 else 4},
        extra={"val_other": 0.5},
    )


def test_a_trial_is_a_nested_run_with_its_params_metrics_and_tags(parent):
    result = nested_trial(parent, _configure, _score)({"x": 7})
    assert result == {
        "loss": pytest.approx(-0.84),
        "status": "ok",
        "params": {"x": 7, "epochs": 2},
        "val_other": 0.5,
    }
    (run,) = _children(parent)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.runName"] == "trial"
    assert run.data.params == {"x": "7", "fixed": "yes"}
    assert run.data.metrics == {"val_score": pytest.approx(0.84)}
    assert run.data.tags[budget.CUT_TAG] == "time budget 60.0s"  # 2 epochs of 4 ran


def test_a_trial_within_its_budget_is_not_tagged_cut_and_may_name_its_run(parent):
    result = nested_trial(parent, _configure, _score, run_name="base")({"x": 3})
    assert result["loss"] == -1.0
    (run,) = _children(parent)
    assert run.data.tags["mlflow.runName"] == "base" and budget.CUT_TAG not in run.data.tags


@pytest.mark.parametrize(
    ("detailed", "error", "tagged"),
    [
        (True, "ValueError: x must be >= 0, got -1", True),
        (False, "x must be >= 0, got -1", False),  # the encoder's trials, as they were
    ],
)
def test_a_failing_trial_is_marked_failed_and_reported_not_raised(parent, detailed, error, tagged):
    result = nested_trial(parent, _configure, _score, detailed_errors=detailed)({"x": -1})
    assert result == {"status": "fail", "error": error}
    (run,) = _children(parent)
    assert run.info.status == "FAILED"
    assert run.data.tags.get("error") == (error if tagged else None)


class _InProcessTrials:
    """SparkTrials' constructor, answered with Hyperopt's in-process ``Trials``."""

    def __new__(cls, parallelism, spark_session, resource_profile, timeout):
        from hyperopt import Trials

        assert spark_session == "spark" and resource_profile is None
        return Trials()


def test_the_search_returns_the_params_the_best_trial_really_ran(parent, monkeypatch):
    import hyperopt
    from hyperopt import hp

    monkeypatch.setattr(hyperopt, "SparkTrials", _InProcessTrials)
    space = {"x": hp.choice("x", [0, 3, 7])}
    objective = nested_trial(parent, _configure, _score)
    best, score, ok = search.spark_search(objective, space, 0, 6, 1, "spark", parent.parent_id)
    assert (best, score, ok) == ({"x": 3, "epochs": 4}, 1.0, 6)
    assert len(_children(parent)) == 6


def test_a_search_whose_every_trial_failed_names_the_errors(parent, monkeypatch):
    import hyperopt
    from hyperopt import hp

    monkeypatch.setattr(hyperopt, "SparkTrials", _InProcessTrials)
    objective = nested_trial(parent, _configure, _score)
    with pytest.raises(RuntimeError, match=r"no tuning trial of 2 finished \(ValueError: x must"):
        search.spark_search(objective, {"x": hp.choice("x", [-1])}, 0, 2, 1, "spark", "p")
    assert {r.info.status for r in _children(parent)} == {"FAILED"}


def test_trials_the_time_limit_cancelled_end_killed_and_only_those(parent):
    client = MlflowClient(parent.tracking_uri)
    nested = {"mlflow.parentRunId": parent.parent_id}
    cancelled = client.create_run(parent.experiment_id, tags=nested).info.run_id
    finished = client.create_run(parent.experiment_id, tags=nested).info.run_id
    client.set_terminated(finished)
    elsewhere = client.create_run(parent.experiment_id).info.run_id
    search.end_cancelled_trials(parent)
    status = {r: client.get_run(r).info.status for r in (cancelled, finished, elsewhere)}
    assert status == {cancelled: "KILLED", finished: "FINISHED", elsewhere: "RUNNING"}


def test_each_trial_gets_its_share_of_a_time_limit():
    assert budget.trial_share(1800, trials=12, parallelism=2) == 300
    assert budget.trial_share(1800, trials=0, parallelism=1) == 1800
    assert budget.cut_tags(4, 4, 60.0) == {}


def test_sizes_keep_their_bucket_until_they_about_double():
    assert reuse.power_of_two(5000) == reuse.power_of_two(5300) == 12
    assert reuse.power_of_two(10_000) == 13
    assert reuse.power_of_two(0) == reuse.power_of_two(1) == 0


def test_the_digest_of_a_base_ignores_key_order_and_sees_any_value():
    a = reuse.config_digest({"epochs": 12, "factors": 64})
    assert a == reuse.config_digest({"factors": 64, "epochs": 12}) and len(a) == 16
    assert a != reuse.config_digest({"epochs": 13, "factors": 64})


def _finished_search(runs: SearchRuns, shape: str, digest: str, trials: int, ok: int) -> str:
    """A parent run tagged and logged as a search records itself (no trial run)."""
    with mlflow.start_run(experiment_id=runs.experiment_id, nested=True) as run:
        reuse.tag_search(shape, digest, trials)
        reuse.tag_best({"x": 3})
        search.log_best({"x": 3}, {"best_val_score": 0.9, "trials_ok": ok})
    return run.info.run_id


def test_a_reuse_finds_the_latest_fitting_search_only(parent):
    find = (parent.tracking_uri, parent.experiment_id)
    assert reuse.latest_search(*find, "s1", "d1", 4, max_age_days=30) is None
    first = _finished_search(parent, "s1", "d1", trials=4, ok=4)
    found = reuse.latest_search(*find, "s1", "d1", 4, max_age_days=30)
    assert found is not None and found.run_id == first and found.trials == 4
    assert found.best_params == {"x": 3} and found.params["best_x"] == "3"
    assert found.metrics == {"best_val_score": 0.9, "trials_ok": 4}
    assert reuse.latest_search(*find, "s2", "d1", 4, max_age_days=30) is None  # shape
    assert reuse.latest_search(*find, "s1", "d2", 4, max_age_days=30) is None  # base
    assert reuse.latest_search(*find, "s1", "d1", 8, max_age_days=30) is None  # fewer trials
    assert reuse.latest_search(*find, "s1", "d1", 4, max_age_days=1e-9) is None  # too old
    _finished_search(parent, "s1", "d1", trials=4, ok=0)  # later, but no trial finished
    assert reuse.latest_search(*find, "s1", "d1", 4, max_age_days=30).run_id == first
