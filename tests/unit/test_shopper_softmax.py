"""Softmax MF with the shopper's latest items: the context it reads, that it learns what
follows what, and that the exported ``Factors`` score exactly as the trained model does."""

import numpy as np
import pytest

from lookalike.shopper.data import Split
from lookalike.shopper.model import MFConfig, ShopperConfigError, factors_from_model, train_mf
from lookalike.shopper.softmax import sequence_context


def _split(sequences: list[list[int]], n_items: int, test: list[int]) -> Split:
    users = np.asarray([u for u, seq in enumerate(sequences) for _ in seq], np.int32)
    items = np.asarray([i for seq in sequences for i in seq], np.int32)
    return Split(
        user_ids=[f"u{u}" for u in range(len(sequences))],
        item_ids=[f"i{i}" for i in range(n_items)],
        train_users=users,
        train_items=items,
        train_strength=np.ones(len(items), np.float32),
        test_items=np.asarray(test, np.int32),
        last_items=np.asarray(test, np.int32),
    )


def test_context_is_the_items_just_before_newest_first_and_each_users_latest():
    split = _split([[3, 1, 4], [2]], 5, [0, -1])
    rows, users = sequence_context(split, 2)
    pad = 5
    assert rows.tolist() == [[pad, pad], [3, pad], [1, 3], [pad, pad]]
    assert users.tolist() == [[4, 1], [2, pad]]


def test_it_learns_what_follows_what_and_exports_the_same_scores():
    # every user walks a cycle of 12 items from a random start; the next item is the test
    rng = np.random.default_rng(0)
    n_items, walks, tests = 12, [], []
    for _ in range(80):
        start, length = int(rng.integers(n_items)), int(rng.integers(3, 7))
        walk = [(start + s) % n_items for s in range(length + 1)]
        walks.append(walk[:-1])
        tests.append(walk[-1])
    split = _split(walks, n_items, tests)
    base = {"factors": 8, "epochs": 40, "batch_size": 64, "learning_rate": 0.02, "l2": 0.0}
    hits = {}
    for context in (0, 1):
        cfg = MFConfig(**base, loss="softmax", context=context, visual=0)
        model, history = train_mf(cfg, split)
        assert history["loss"][-1] < history["loss"][0]
        factors = factors_from_model(cfg, model, split)
        users = np.arange(split.n_users)
        hits[context] = float((factors.scores(users).argmax(1) == split.test_items).mean())
        if context:  # the folded vectors are exactly the model's user vectors
            _, latest = sequence_context(split, 1)
            vec = model.predict(
                {"user": users, "context": latest, "item": np.zeros_like(users)}, verbose=0
            )
            np.testing.assert_allclose(factors.user_gmf, vec, rtol=1e-4, atol=1e-5)
    assert hits[1] > 0.9 and hits[1] > hits[0] + 0.3, hits


def test_sampled_softmax_trains_on_a_catalogue_larger_than_its_sample():
    rng = np.random.default_rng(1)
    walks = [list(rng.integers(0, 300, size=5)) for _ in range(40)]
    split = _split(walks, 300, [-1] * 40)
    cfg = MFConfig(factors=4, epochs=2, batch_size=32, loss="softmax", context=2, sampled=50)
    model, history = train_mf(cfg, split, item_features=rng.normal(size=(300, 6)).astype("f4"))
    assert np.isfinite(history["loss"]).all()
    assert factors_from_model(cfg, model, split).item_gmf.shape == (300, 4)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"loss": "hinge"}, "loss"),
        ({"mlp": (8,), "loss": "softmax"}, "mlp"),
        ({"context": 3}, "context"),
    ],
)
def test_bad_combinations_are_refused_by_name(changes, field):
    with pytest.raises(ShopperConfigError, match=field):
        MFConfig(**changes)
