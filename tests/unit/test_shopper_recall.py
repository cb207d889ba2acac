"""The shopper bundle's MIPS recall check counts equal scores as ties, and still refuses a
searcher that misses (hand-made factors: no training)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from lookalike.index.scann_index import RecallTooLow
from lookalike.shopper import bundle as recommender
from lookalike.shopper.bundle import build_bundle, build_searcher, searcher_recall
from lookalike.shopper.data import Split
from lookalike.shopper.model import Factors


def duplicated_items(groups: int = 30, size: int = 20, d: int = 8) -> np.ndarray:
    """Items in groups of ``size`` with identical factors (not normalised: MIPS scores)."""
    rng = np.random.default_rng(0)
    return np.repeat(rng.normal(size=(groups, d)), size, axis=0).astype(np.float32)


def world(n_users: int = 50, items: np.ndarray | None = None) -> tuple[Factors, Split]:
    """Random users over ``items`` (default: ``duplicated_items``), 3 train items each."""
    rng = np.random.default_rng(1)
    items = duplicated_items() if items is None else items
    n_items, d = items.shape
    factors = Factors(
        user_gmf=rng.normal(size=(n_users, d)).astype(np.float32),
        item_gmf=items,
        item_bias=np.zeros(n_items, np.float32),
        w_gmf=np.ones(d, np.float32),
    )
    users = np.repeat(np.arange(n_users, dtype=np.int32), 3)
    split = Split(
        user_ids=[f"u{j}" for j in range(n_users)],
        item_ids=[f"p{j}" for j in range(n_items)],
        train_users=users,
        train_items=rng.integers(0, n_items, len(users)).astype(np.int32),
        train_strength=np.ones(len(users), np.float32),
        test_items=np.full(n_users, -1, np.int32),
        last_items=np.zeros(n_users, np.int32),
    )
    return factors, split


class RandomSearcher:
    """Returns random items: a searcher that really misses."""

    def search_batched(self, queries: np.ndarray, final_num_neighbors: int) -> tuple[Any, Any]:
        rng = np.random.default_rng(0)
        found = rng.integers(0, 600, (len(queries), final_num_neighbors)).astype(np.uint32)
        return found, np.zeros(found.shape, np.float32)


def test_searcher_recall_counts_equal_scores_as_ties() -> None:
    items = duplicated_items()
    queries = np.random.default_rng(2).normal(size=(100, items.shape[1])).astype(np.float32)
    recall = searcher_recall(build_searcher(items), items, queries)
    assert recall.with_ties == 1.0 and recall.strict < 0.98
    assert searcher_recall(RandomSearcher(), items, queries).with_ties < 0.5


def test_bundle_passes_on_ties_and_records_both_recalls(tmp_path) -> None:
    factors, split = world()
    manifest = build_bundle(
        tmp_path / "b",
        factors,
        split,
        None,
        config={},
        interactions_version=0,
        metrics={},
        min_recall=0.98,
        recall_tolerance=1e-3,
    )
    index = json.loads((tmp_path / "b" / "manifest.json").read_text())["index"]
    assert index == manifest["index"]
    assert index["recall_at_10"] == 1.0 and index["recall_at_10_strict"] < 0.98
    assert index["recall_tolerance"] == 1e-3 and index["size"] == 600


def test_bundle_refuses_a_searcher_that_misses(tmp_path, monkeypatch) -> None:
    factors, split = world()
    monkeypatch.setattr(recommender, "build_searcher", lambda vectors: RandomSearcher())
    with pytest.raises(RecallTooLow, match=r"recall@10 0\.\d+ \(strict 0\.\d+\) < 0\.98"):
        build_bundle(
            tmp_path / "b",
            factors,
            split,
            None,
            config={},
            interactions_version=0,
            metrics={},
            min_recall=0.98,
        )
    assert not (tmp_path / "b" / "manifest.json").exists()


class ShallowSearcher:
    """Exact only when asked to search at least ``needs`` partitions: a partitioned searcher
    whose built settings miss on these factors."""

    def serialize(self, path: str, relative_path: bool = False) -> None:
        pass

    def __init__(self, items: np.ndarray, needs: int) -> None:
        self.items, self.needs = items, needs
        self.asked: list[dict] = []

    def search_batched(self, queries, final_num_neighbors, **options):
        self.asked.append(options)
        if options.get("leaves_to_search", 0) >= self.needs:
            top = np.argsort(-(queries @ self.items.T), axis=1)[:, :final_num_neighbors]
            return top.astype(np.uint32), np.take_along_axis(queries @ self.items.T, top, 1)
        return RandomSearcher().search_batched(queries, final_num_neighbors)


def test_bundle_widens_the_search_until_the_gate_is_met_and_records_it(tmp_path, monkeypatch):
    factors, split = world()
    monkeypatch.setattr(recommender, "BRUTE_FORCE_BELOW", 100)  # 600 items: partitioned
    ladder = recommender.search_ladder(600)
    assert ladder[0].leaves_to_search is None and len(ladder) == 4
    assert [t.leaves_to_search for t in ladder[1:]] == sorted(
        t.leaves_to_search for t in ladder[1:]
    )
    needs = ladder[2].leaves_to_search
    fake = ShallowSearcher(factors.item_vectors(), needs)
    monkeypatch.setattr(recommender, "build_searcher", lambda vectors: fake)
    manifest = build_bundle(
        tmp_path / "b",
        factors,
        split,
        None,
        config={},
        interactions_version=0,
        metrics={},
        min_recall=0.98,
    )
    assert len(fake.asked) == 3  # built settings, then two wider steps
    assert manifest["index"]["search"] == {"leaves_to_search": needs, "reorder": 600}
    assert manifest["index"]["recall_at_10"] == 1.0


def test_a_partitioned_bundle_answers_with_its_recorded_search(tmp_path):
    """Real ScaNN above the brute-force threshold: the bundle loads and answers with the
    query-time settings its recall check chose."""
    items = np.random.default_rng(3).normal(size=(2500, 16)).astype(np.float32)
    factors, split = world(n_users=40, items=items)
    manifest = build_bundle(
        tmp_path / "b",
        factors,
        split,
        None,
        config={},
        interactions_version=0,
        metrics={},
        min_recall=0.98,
    )
    assert manifest["index"]["recall_at_10"] >= 0.98
    manifest["index"]["search"] = {"leaves_to_search": 50, "reorder": 600}  # a wider step
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    rec = recommender.ShopperRecommender(tmp_path / "b")
    assert rec._search(30) == {"leaves_to_search": 50, "pre_reorder_num_neighbors": 600}
    hits, mode = rec.recommend("u1", 10)
    exact = factors.scores(np.asarray([1]))[0]
    exact[rec.seen(1)] = -np.inf
    assert mode == "personal" and len(hits) == 10
    assert {h.item_id for h in hits} & {f"p{j}" for j in np.argsort(-exact)[:10]}
