"""EASE and the validation split that the tuned baselines (and the shopper model) are
chosen on: small hand-made interactions, checked against what the definitions say."""

import numpy as np
import pytest

from lookalike.shopper import baselines as bl
from lookalike.shopper.data import Split
from lookalike.shopper.evaluate import rank_metrics


def _split(pairs: list[tuple[int, int]], n_items: int, test: list[int]) -> Split:
    users = np.asarray([u for u, _ in pairs], np.int32)
    items = np.asarray([i for _, i in pairs], np.int32)
    n_users = len(test)
    return Split(
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        train_users=users,
        train_items=items,
        train_strength=np.ones(len(pairs), np.float32),
        test_items=np.asarray(test, np.int32),
        last_items=np.asarray(test, np.int32),
    )


def test_validation_holds_out_each_users_newest_train_item_never_the_test_item():
    # user 0: items 0, 1, 2 in that order (test 3); user 1: a single train item; user 2: 4 then 0
    split = _split([(0, 0), (2, 4), (0, 1), (1, 2), (0, 2), (2, 0)], 5, [3, 4, 1])
    val = bl.validation_split(split)
    assert val.test_items.tolist() == [2, -1, 0]
    kept = sorted(zip(val.train_users.tolist(), val.train_items.tolist(), strict=True))
    assert kept == [(0, 0), (0, 1), (1, 2), (2, 4)]
    assert 3 not in val.train_items[val.train_users == 0]


def test_ease_weights_solve_the_closed_form_with_a_zero_diagonal():
    rng = np.random.default_rng(0)
    pairs = sorted({(int(u), int(i)) for u, i in rng.integers(0, [30, 12], size=(150, 2))})
    split = _split(pairs, 12, [-1] * 30)
    b = bl.ease_weights(split, reg=5.0)
    assert np.allclose(np.diag(b), 0.0)
    x = bl._binary_matrix(split).toarray().astype(np.float64)
    g = x.T @ x + 5.0 * np.eye(12)
    # the stationarity condition of the constrained least squares: (G B - G)_ij = 0 off the diagonal
    residual = g @ b - (x.T @ x)
    off = ~np.eye(12, dtype=bool)
    assert np.abs(residual[off]).max() < 1e-3


def test_ease_ranks_the_co_bought_item_first_and_refuses_huge_catalogues(monkeypatch):
    # items 0 and 1 always go together; user 3 has seen 0 only and must get 1 first
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0)]
    split = _split(pairs, 4, [-1, -1, -1, 1])
    scores = bl.ease_scorer(split, bl.ease_weights(split, reg=0.5))(np.asarray([3]))
    assert int(np.argmax(np.where(np.arange(4) == 0, -np.inf, scores[0]))) == 1
    metrics = rank_metrics(bl.ease_scorer(split, bl.ease_weights(split, 0.5)), split, k=1)
    assert metrics["hr_at_1"] == 1.0
    monkeypatch.setattr(bl, "EASE_MAX_ITEMS", 3)
    with pytest.raises(bl.TooManyItems, match="4 items"):
        bl.ease_weights(split)


def test_tune_ease_picks_a_regularisation_from_the_grid_on_validation():
    rng = np.random.default_rng(1)
    pairs = sorted({(int(u), int(i)) for u, i in rng.integers(0, [40, 15], size=(300, 2))})
    split = _split(pairs, 15, [-1] * 40)
    reg, tried = bl.tune_ease(split, regs=(1.0, 10.0, 100.0))
    assert [t["reg"] for t in tried] == [1.0, 10.0, 100.0]
    assert reg == max(tried, key=lambda t: t["val_ndcg_at_10"])["reg"]
