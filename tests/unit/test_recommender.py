"""The bundle's query logic (exact searcher, fake encoder) and the promotion gate."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lookalike.registry.gate import PromotionError, decide


def test_gate_promotes_without_champion_and_only_when_better_by_the_margin():
    better = decide("precision_at_1", ("2", {"precision_at_1": 0.91}), None, 0.01)
    assert better.promote and better.reason == "no champion yet"
    win = decide(
        "precision_at_1", ("2", {"precision_at_1": 0.91}), ("1", {"precision_at_1": 0.89}), 0.01
    )
    assert win.promote and win.champion_value == 0.89
    close = decide(
        "precision_at_1", ("2", {"precision_at_1": 0.895}), ("1", {"precision_at_1": 0.89}), 0.01
    )
    assert not close.promote and "does not beat" in close.reason
    worse = decide(
        "precision_at_1", ("2", {"precision_at_1": 0.80}), ("1", {"precision_at_1": 0.89}), 0.0
    )
    assert not worse.promote
    same = decide(
        "precision_at_1", ("1", {"precision_at_1": 0.89}), ("1", {"precision_at_1": 0.89}), 0.0
    )
    assert not same.promote and "already the champion" in same.reason
    with pytest.raises(PromotionError, match="promote_metric: 'accuracy'"):
        decide("accuracy", ("2", {"precision_at_1": 0.9}), None, 0.0)


def test_gate_refuses_a_challenger_that_does_not_beat_the_baseline():
    pixels = ("raw pixels", {"precision_at_1": 0.76})
    first = decide("precision_at_1", ("1", {"precision_at_1": 0.67}), None, 0.0, pixels)
    assert not first.promote and first.baseline_value == 0.76
    assert first.reason == "precision_at_1 0.6700 does not beat the raw pixels baseline 0.7600"
    tie = decide("precision_at_1", ("1", {"precision_at_1": 0.76}), None, 0.0, pixels)
    assert not tie.promote
    # better than the champion is not enough when both are worse than pixels
    champ = ("1", {"precision_at_1": 0.60})
    worse = decide("precision_at_1", ("2", {"precision_at_1": 0.70}), champ, 0.0, pixels)
    assert not worse.promote and "baseline" in worse.reason
    good = decide("precision_at_1", ("2", {"precision_at_1": 0.80}), champ, 0.0, pixels)
    assert good.promote and "beats the raw pixels baseline 0.7600" in good.reason


@pytest.fixture(scope="module")
def rec():
    from lookalike.index.scann_index import IndexParams, build_searcher
    from lookalike.similarity.bundle import Recommender

    rng = np.random.default_rng(0)
    n, d = 60, 8
    v = rng.normal(size=(n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = [f"i{j:02d}" for j in range(n)]
    items = pa.table(
        {
            "item_id": ids,
            "category": pa.array([j % 3 for j in range(n)], pa.int32()),
            "category_name": [f"c{j % 3}" for j in range(n)],
            "content_hash": ids,
        }
    )
    manifest = {
        "encoder": {
            "name": "e",
            "version": "1",
            "input_size": 4,
            "channels": 1,
            "embedding_size": d,
        },
        "index_version": "v000001",
        "catalog_version": 3,
        "dimension": d,
    }

    def predict(x: np.ndarray) -> np.ndarray:  # a fake encoder: mean brightness -> vector
        out = np.tile(v[0], (len(x), 1))
        return out

    r = Recommender(predict, build_searcher(v, ids, IndexParams.for_size(n)), v, items, manifest)
    r.check()
    return r


def test_similar_items_exclude_self_and_respect_k(rec):
    hits = rec.similar_to_items(["i05"], k=4)[0]
    assert len(hits) == 4 and "i05" not in {h.item_id for h in hits}
    sims = rec.vectors @ rec.vectors[5]
    expected = [rec.item_ids[j] for j in np.argsort(-sims) if j != 5][:4]
    assert [h.item_id for h in hits] == expected
    assert rec.similar_to_items(["i05"], k=1, exclude_self=False)[0][0].item_id == "i05"


def test_category_filter_always_fills_k_from_that_category(rec):
    hits = rec.similar_to_items(["i05"], k=10, category=1)[0]
    assert len(hits) == 10 and {h.category for h in hits} == {1}


def test_unknown_item_and_versions(rec):
    from lookalike.similarity.bundle import UnknownItem

    with pytest.raises(UnknownItem, match="unknown item 'nope'"):
        rec.similar_to_items(["nope"])
    assert rec.versions()["index_version"] == "v000001"
    assert rec.versions()["catalog_version"] == 3


def test_a_bundle_whose_parts_disagree_is_refused(rec):
    from lookalike.similarity.bundle import BundleCheckError, Recommender

    bad = dict(rec.manifest, encoder=dict(rec.manifest["encoder"], embedding_size=16))
    items = pa.table(
        {
            "item_id": rec.item_ids,
            "category": rec.categories,
            "category_name": [rec.category_labels[int(c)] for c in rec.categories],
            "content_hash": rec.item_ids,
        }
    )
    with pytest.raises(BundleCheckError, match="dimension mismatch"):
        Recommender(rec.predict, rec.searcher, rec.vectors, items, bad).check()


def test_photo_queries_are_validated(rec):
    from lookalike.images import ImageRejected

    with pytest.raises(ImageRejected, match="empty file"):
        rec.similar_to_images([b""])
