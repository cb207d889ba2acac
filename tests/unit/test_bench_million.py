"""The million-vector set's pieces that need no encoder: augmentations and distinct rows."""

from __future__ import annotations

import numpy as np

from bench.million import augment, distinct_rows


def test_augmentations_are_seeded_and_change_every_photo() -> None:
    photos = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    a = augment(photos, np.random.default_rng(1))
    b = augment(photos, np.random.default_rng(1))
    assert a.shape == photos.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)  # the same seed, the same copies
    assert all(not np.array_equal(a[i], photos[i]) for i in range(len(photos)))
    assert not np.array_equal(a, augment(photos, np.random.default_rng(2)))


def test_distinct_rows_drops_repeats_across_calls() -> None:
    seen: set[bytes] = set()
    x = np.eye(3, dtype=np.float32)
    assert len(distinct_rows(np.vstack([x, x[:1]]), seen)) == 3
    assert len(distinct_rows(np.vstack([x[1:], 2 * x[:1]]), seen)) == 1
