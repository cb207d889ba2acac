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


class _Searcher:
    def __init__(self, imbalance: float, after: float) -> None:
        self.imbalance, self.after, self.rebalanced = imbalance, after, False

    def get_health_stats(self) -> dict[str, float]:
        return {builder.IMBALANCE_STAT: self.imbalance}

    def rebalance(self) -> None:
        self.rebalanced, self.imbalance = True, self.after


def _base(imbalance: float, manifest: dict) -> builder._Base:
    manifest = {"params": {"num_leaves": 50}, **manifest}
    searcher = _Searcher(imbalance, after=0.7)
    return builder._Base(Path("v1"), searcher, manifest, np.zeros((0, 2)), pa.table({}))


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
        Settings(), base, changed, n_items=1000
    )
    assert rebalanced is due and base.searcher.rebalanced is due
    if due:
        assert (since, balanced, health[builder.IMBALANCE_STAT]) == (0, 0.7, 0.7)
    else:
        assert since == manifest.get("changed_since_rebalance", 0) + changed
        assert balanced == manifest.get("balanced_imbalance", 0.5)


def test_brute_force_index_never_rebalances():
    base = _base(5.0, {"params": {"num_leaves": 0}})
    assert builder._rebalance_if_due(Settings(), base, 900, n_items=1000)[3] is False
