"""The shopper search space: every point is a valid MFConfig, the nested loss choice is
lifted, and the best point round-trips through ``shopper train --sets``; ``tune`` values,
data shapes, and which earlier search ``tune auto`` reuses (a real MLflow store)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.shopper.data import Split
from lookalike.shopper.model import MFConfig
from lookalike.shopper.tuning import (
    AUTO,
    as_sets,
    data_shape,
    flatten,
    parse_tune,
    previous_search,
    search_space,
    searched_params,
)


def test_every_point_of_the_space_is_a_valid_config():
    from hyperopt.pyll.stochastic import sample

    base = MFConfig()
    space = search_space(base)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        params = flatten(sample(space, rng=rng))
        cfg = base.replace(**params)  # raises ShopperConfigError on a bad combination
        assert cfg.epochs in (base.epochs, 2 * base.epochs)
        assert cfg.batch_size in (256, base.batch_size)
        assert 1e-7 <= cfg.l2 <= 1e-4 and 5e-4 <= cfg.learning_rate <= 5e-3
        if cfg.loss == "bce":
            assert cfg.context == 0 and "sampled" not in params
        seen.add((cfg.loss, cfg.context))
    assert seen == {("bce", 0), ("softmax", 0), ("softmax", 3), ("softmax", 5)}


def test_a_softmax_base_still_gets_bce_points_without_context():
    base = MFConfig(loss="softmax", context=5)
    cfg = base.replace(**flatten({"loss": {"loss": "bce", "context": 0}, "factors": 64}))
    assert (cfg.loss, cfg.context, cfg.factors) == ("bce", 0, 64)


@pytest.mark.parametrize(
    "point",
    [
        {"loss": {"loss": "softmax", "context": 3, "sampled": 500}, "l2": 3.14159e-6},
        {"loss": {"loss": "bce", "context": 0}, "learning_rate": 0.0012345, "epochs": 24.0},
    ],
)
def test_best_params_round_trip_through_sets(point):
    params = flatten(point)
    assert MFConfig.from_overrides(as_sets(params).split()) == MFConfig().replace(**params)


@pytest.mark.parametrize(("given", "tune"), [("auto", AUTO), (" AUTO", AUTO), ("0", 0), (12, 12)])
def test_tune_is_auto_or_a_number_of_trials(given, tune):
    assert parse_tune(given) == tune


@pytest.mark.parametrize("given", ["-1", "1.5", "many", ""])
def test_a_bad_tune_value_is_refused_by_name(given):
    with pytest.raises(ValueError, match="must be 'auto' or a number of trials >= 0"):
        parse_tune(given)


@pytest.mark.parametrize("base", [MFConfig(), MFConfig(loss="softmax", context=3, sampled=500)])
def test_the_base_scored_as_a_point_is_the_base(base):
    params = searched_params(base)
    assert ("sampled" in params) == (base.loss == "softmax")
    assert base.replace(**flatten({"loss": params})) == base


def _split(users: int, items: int, pairs: int) -> Split:
    return Split(
        user_ids=[f"u{i}" for i in range(users)],
        item_ids=[f"i{i}" for i in range(items)],
        train_users=np.zeros(pairs, np.int32),
        train_items=np.zeros(pairs, np.int32),
        train_strength=np.ones(pairs, np.float32),
        test_items=np.full(users, -1, np.int32),
        last_items=np.zeros(users, np.int32),
    )


def test_the_shape_holds_while_the_data_grows_a_little_and_changes_when_it_doubles():
    shape = data_shape(_split(5000, 70000, 400_000), visual=True)
    assert shape == data_shape(_split(5300, 71000, 420_000), visual=True)
    assert shape != data_shape(_split(10_000, 70000, 400_000), visual=True)
    assert shape != data_shape(_split(5000, 70000, 400_000), visual=False)


def _record_search(
    settings: Settings, base: MFConfig, shape: str, trials: int, finished: int | None = None
) -> str:
    """A finished search's parent run as ``_search`` tags it (no training)."""
    import json

    import mlflow

    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.shopper import tuning as tune
    from lookalike.training import reuse

    setup_mlflow(settings, settings.shopper_experiment)
    with mlflow.start_run() as run:
        best = {"loss": "bce", "factors": 64, "l2": 1e-6}
        mlflow.set_tags(
            {
                reuse.SHAPE_TAG: shape,
                reuse.BASE_TAG: tune.base_key(base),
                reuse.TRIALS_TAG: str(trials),
                reuse.BEST_TAG: json.dumps(best),
            }
        )
        mlflow.log_param("interactions", 3)
        ok = trials if finished is None else finished
        mlflow.log_metrics({"best_val_ndcg_at_10": 0.08, "trials_ok": ok})
    return run.info.run_id


def test_auto_reuses_the_latest_search_for_the_same_base_and_shape_only(tmp_path):
    settings = Settings(home=tmp_path)
    base, shape = MFConfig(), "users~2^12 items~2^16 pairs~2^19 visual"
    assert previous_search(settings, base, shape, min_trials=12) is None  # nothing yet
    run_id = _record_search(settings, base, shape, trials=12)
    found = previous_search(settings, base, shape, min_trials=12)
    assert found is not None and found.reused and found.parent_run_id == run_id
    assert found.best_params == {"loss": "bce", "factors": 64, "l2": 1e-6}
    assert found.interactions_version == 3 and found.best_val_ndcg_at_10 == 0.08
    assert previous_search(settings, base, shape.replace("2^12", "2^13"), 12) is None
    assert previous_search(settings, base.replace(epochs=5), shape, 12) is None
    assert previous_search(settings, base, shape, min_trials=20) is None  # a smaller budget
    stale = settings.model_copy(update={"shopper_retune_days": 1e-9})
    assert previous_search(stale, base, shape, min_trials=12) is None
    # a later search whose trials the time limit all cancelled is skipped: the earlier one
    _record_search(settings, base, shape, trials=12, finished=0)
    assert previous_search(settings, base, shape, min_trials=12).parent_run_id == run_id


@pytest.mark.parametrize(
    ("base_score", "trials", "expected"),
    [
        (0.05, (0.07, 3), ("softmax", 0.07, 3)),  # a trial beats the base
        (0.07, (0.05, 3), ("bce", 0.07, 3)),  # none does: the base stays
        (0.05, None, ("bce", 0.05, 0)),  # no trial finished (time limit): the base stays
    ],
)
def test_the_search_keeps_the_base_unless_a_trial_beats_it(
    monkeypatch, base_score, trials, expected
):
    from lookalike.shopper.tuning import _best_of_trials
    from lookalike.training import search as model_tune

    def fake_search(*args, **kwargs):
        if trials is None:
            raise RuntimeError("all 12 tuning trials failed (cancelled)")
        point = {"loss": {"loss": "softmax", "context": 5, "sampled": 500}, "factors": 64}
        return point, *trials

    monkeypatch.setattr(model_tune, "spark_search", fake_search)
    base = MFConfig()
    best, score, ok = _best_of_trials(Settings(), base, base_score, None, 12, 2, None, "p")
    assert (best["loss"], score, ok) == expected
    assert base.replace(**best).loss == expected[0]


def test_no_trial_and_no_base_score_is_an_error(monkeypatch):
    from lookalike.shopper.tuning import _best_of_trials
    from lookalike.training import search as model_tune

    def fake_search(*args, **kwargs):
        raise RuntimeError("all 12 tuning trials failed (boom)")

    monkeypatch.setattr(model_tune, "spark_search", fake_search)
    with pytest.raises(RuntimeError, match="boom"):
        _best_of_trials(Settings(), MFConfig(), None, None, 12, 2, None, "p")


def test_a_large_split_is_sampled_by_whole_users_for_the_trials():
    from lookalike.shopper.tuning import tuning_sample

    rng = np.random.default_rng(1)
    users = np.sort(rng.integers(0, 500, 20_000)).astype(np.int32)
    split = _split(500, 3000, len(users))
    split.train_users = users
    split.train_items = rng.integers(0, 3000, len(users)).astype(np.int32)
    split.test_items = np.arange(500, dtype=np.int32)
    assert tuning_sample(split, 20_000, seed=0) is split  # small enough: untouched
    sample = tuning_sample(split, 5_000, seed=0)
    assert 4_900 <= len(sample.train_users) <= 5_000 and sample.item_ids == split.item_ids
    counts = np.bincount(users, minlength=500)
    kept = [int(u[1:]) for u in sample.user_ids]
    assert kept == sorted(kept)
    assert np.array_equal(np.bincount(sample.train_users), counts[kept])  # whole users
    assert np.array_equal(sample.test_items, np.asarray(kept, dtype=np.int32))
    first = int(np.flatnonzero(users == kept[0])[0])
    assert sample.train_items[0] == split.train_items[first]  # row order kept


def test_the_time_budget_stops_after_the_epoch_past_which_one_more_would_overrun(monkeypatch):
    from types import SimpleNamespace

    from lookalike.training import budget as tune

    budget = tune.time_budget(35.0)  # imports TensorFlow before the clock is faked
    clock = iter([100.0, 110.0, 121.0, 133.0])  # start, then the end of epochs 1, 2 and 3
    monkeypatch.setattr(tune.time, "monotonic", lambda: next(clock))
    budget.set_model(SimpleNamespace(stop_training=False))
    budget.on_train_begin()
    budget.on_epoch_end(0)  # 10 s: 2 epochs ~ 20 s, within 35
    budget.on_train_begin()  # a new `fit` per epoch: the clock keeps running
    budget.on_epoch_end(0)  # 21 s: 3 epochs ~ 31.5 s, within 35
    assert not budget.model.stop_training
    budget.on_train_begin()
    budget.on_epoch_end(0)  # 33 s: a 4th epoch would end near 44 s
    assert budget.model.stop_training and budget.epochs == 3


def test_the_time_budget_cuts_an_epoch_that_alone_overruns_it(monkeypatch):
    from types import SimpleNamespace

    from lookalike.training import budget as tune

    budget = tune.time_budget(35.0)
    clock = iter([100.0, 120.0, 136.0])  # start, then the ends of two batches
    monkeypatch.setattr(tune.time, "monotonic", lambda: next(clock))
    budget.set_model(SimpleNamespace(stop_training=False))
    budget.on_train_begin()
    budget.on_train_batch_end(0)  # 20 s in
    assert not budget.model.stop_training
    budget.on_train_batch_end(1)  # 36 s in: past the budget inside the first epoch
    assert budget.model.stop_training


def test_each_trial_gets_its_share_of_the_time_limit():
    from lookalike.shopper.tuning import trial_budget_seconds

    settings = Settings(shopper_tune_minutes=30)
    assert trial_budget_seconds(settings, trials=12, parallelism=2) == 300
    assert trial_budget_seconds(settings, trials=12, parallelism=1) == 150


def _random_pairs() -> Split:
    """20 users, 30 items, 200 random train pairs: enough for a few tiny training steps."""
    rng = np.random.default_rng(0)
    split = _split(20, 30, 200)
    split.train_users = np.sort(rng.integers(0, 20, 200)).astype(np.int32)
    split.train_items = rng.integers(0, 30, 200).astype(np.int32)
    return split


@pytest.mark.parametrize("loss", ["bce", "softmax"])
def test_a_callback_that_stops_training_ends_the_epoch_loop(loss):
    import tensorflow as tf

    from lookalike.shopper.model import train_mf

    class StopAfterTwo(tf.keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1
            self.model.stop_training = self.epochs >= 2

    split = _random_pairs()
    cfg = MFConfig(factors=4, epochs=6, batch_size=32, visual=0, loss=loss, sampled=10)
    _, history = train_mf(cfg, split, callbacks=[StopAfterTwo()])
    assert len(history["loss"]) == 2


def test_a_callback_can_stop_training_inside_an_epoch():
    import tensorflow as tf

    from lookalike.shopper.model import train_mf

    class StopAtBatchThree(tf.keras.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            self.model.stop_training = self.batches >= 3

    split = _random_pairs()
    stop = StopAtBatchThree()
    cfg = MFConfig(factors=4, epochs=6, batch_size=32, visual=0)  # 1,000 rows: 31 steps
    _, history = train_mf(cfg, split, callbacks=[stop])
    assert stop.batches == 3 and len(history["loss"]) == 1
