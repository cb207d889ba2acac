"""Training-data rules that need no Spark or TensorFlow."""

import numpy as np

from lookalike.similarity.data import ImageSet, distinct_photos, validation_split


def _items(pixels: list[int], labels: list[int]) -> ImageSet:
    x = np.array([np.full((4, 4, 1), p, dtype=np.uint8) for p in pixels])
    ids = np.array([f"item-{i}" for i in range(len(pixels))])
    return ImageSet(ids, x, np.array(labels, dtype=np.int32), {0: "a", 1: "b"})


def test_distinct_photos_keeps_the_first_item_of_each_photo_in_order():
    items = _items([5, 7, 5, 9, 7, 5], [0, 1, 0, 1, 1, 0])
    got = distinct_photos(items)
    assert list(got.item_ids) == ["item-0", "item-1", "item-3"]
    assert list(got.y) == [0, 1, 1]
    assert len(distinct_photos(got)) == 3  # idempotent


def test_copies_of_a_photo_stay_on_one_side_of_the_validation_split():
    items = _items([p for p in range(40) for _ in range(3)], [p % 2 for p in range(120)])
    fit, val = validation_split(items, fraction=0.3)
    assert len(val) > 0 and len(fit) > 0
    assert not {x.tobytes() for x in fit.x} & {x.tobytes() for x in val.x}
