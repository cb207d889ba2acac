"""When an index update rebalances ScaNN's partitions: enough changes since the last
rebalance, or an imbalance that grew against the one right after it (not an absolute one:
k-means on clustered photos starts uneven)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lookalike.config import Settings
from lookalike.similarity import index as builder

PARAMS = {"num_leaves": 50, "num_leaves_to_search": 5, "reorder": 100}
ITEMS = pa.table({"item_id": [f"i{j:04d}" for j in range(1000)]})
VECTORS = np.zeros((1000, 2), np.float32)


class _Searcher:
    def __init__(self, imbalance: float, rebuilt: bool = False) -> None:
        self.imbalance, self.rebuilt = imbalance, rebuilt

    def get_health_stats(self) -> dict[str, float]:
        return {builder.IMBALANCE_STAT: self.imbalance}


@pytest.fixture(autouse=True)
def rebuild(monkeypatch):
    """A rebalance is a new build over the float32 rows, with the base's parameters."""

    def build_searcher(vectors, ids, params):
        assert vectors is VECTORS and ids == ITEMS.column("item_id").to_pylist()
        assert params == builder.sx.IndexParams(**PARAMS)
        return _Searcher(0.7, rebuilt=True)

    monkeypatch.setattr(builder.sx, "build_searcher", build_searcher)


def _base(imbalance: float, manifest: dict) -> builder._Base:
    manifest = {"params": PARAMS, **manifest}
    return builder._Base(Path("v1"), _Searcher(imbalance), manifest, VECTORS, ITEMS)


@pytest.mark.parametrize(
    ("imbalance", "manifest", "changed", "due"),
    [
        (1.1, {"balanced_imbalance": 0.9}, 10, False),  # uneven from the start: kept
        (1.5, {"balanced_imbalance": 0.9}, 10, True),  # grew by 0.6: rebalanced
        (0.8, {"balanced_imbalance": 0.8, "changed_since_rebalance": 150}, 60, True),  # share
        (1.1, {}, 10, True),  # a manifest without a baseline: 1.0 as before
        (0.9, {}, 10, False),
    ],
)
def test_rebalance_rule(imbalance, manifest, changed, due):
    base = _base(imbalance, manifest)
    since, health, balanced, rebalanced = builder._rebalance_if_due(
        Settings(), base, changed, ITEMS, VECTORS
    )
    assert rebalanced is due and base.searcher.rebuilt is due
    if due:
        assert (since, balanced, health[builder.IMBALANCE_STAT]) == (0, 0.7, 0.7)
    else:
        assert since == manifest.get("changed_since_rebalance", 0) + changed
        assert balanced == manifest.get("balanced_imbalance", 0.5)


def test_brute_force_index_never_rebalances():
    base = _base(5.0, {"params": PARAMS | {"num_leaves": 0}})
    assert builder._rebalance_if_due(Settings(), base, 900, ITEMS, VECTORS)[3] is False
