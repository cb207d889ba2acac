"""Random erasing: how much it erases, where, and that it never touches labels."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.similarity.augment import RandomErasing


def _batch(n: int = 64) -> np.ndarray:
    return np.full((n, 28, 28, 1), 7, dtype=np.uint8)


def test_erases_one_rectangle_in_the_expected_share_of_images() -> None:
    x = _batch(400)
    out, y = RandomErasing(0.5, seed=1)(x, np.arange(400))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert (x == 7).all()  # the input batch is not modified in place
    assert (y == np.arange(400)).all()
    changed = (out != x).reshape(400, 28, 28)
    hit = changed.any(axis=(1, 2))
    assert 0.4 < hit.mean() < 0.6
    for img in changed[hit][:50]:
        rows, cols = np.nonzero(img)
        # noise can equal the fill value, so compare with the rectangle's bounding box
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box <= 0.25 * 28 * 28 * 1.2
        assert img.sum() >= 0.9 * box


def test_zero_probability_is_the_identity_and_same_seed_same_result() -> None:
    x = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 3)).astype(np.uint8)
    assert (RandomErasing(0.0)(x, None)[0] == x).all()
    a = RandomErasing(1.0, seed=3).erase(x)
    b = RandomErasing(1.0, seed=3).erase(x)
    assert (a == b).all() and (a != x).any()


def test_bad_probability_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"^erase: "):
        RandomErasing(1.5)
