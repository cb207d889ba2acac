"""recall@k with ties (ann-benchmarks) vs strict, and the index publish gate that uses it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lookalike.config import Settings
from lookalike.index.recall import exact_top_indices, recall_at_k, rows_of
from lookalike.index.scann_index import (
    BRUTE_FORCE_BELOW,
    IndexParams,
    RecallTooLow,
    build_searcher,
    measure_recall,
    read_manifest,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def duplicate_catalogue(groups: int, size: int = 20, d: int = 32) -> tuple[np.ndarray, list[str]]:
    """``groups`` products photographed ``size`` times: every other copy is bit-identical, the
    rest differ by 1e-5 noise, like re-uploaded and re-encoded images of one article."""
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(groups, d)), size, axis=0)
    noisy = np.arange(len(x)) % 2 == 1
    x[noisy] += 1e-5 * rng.normal(size=(int(noisy.sum()), d))
    return unit(x), [f"item-{i:05d}" for i in range(len(x))]


def random_catalogue(n: int, d: int = 32, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    return unit(np.random.default_rng(seed).normal(size=(n, d))), [f"i{j:05d}" for j in range(n)]


def settings(tmp_path, **overrides) -> Settings:
    return Settings(home=tmp_path, **overrides)


# ----------------------------------------------------------------- the definition


def test_a_near_tie_counts_with_ties_but_not_strict() -> None:
    vectors = np.array([[1.0, 0.0], [0.9999, 0.0141], [0.0, 1.0]], dtype=np.float32)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    near = recall_at_k([[1]], vectors, q, k=1)
    assert (near.with_ties, near.strict) == (1.0, 0.0)
    assert recall_at_k([[2]], vectors, q, k=1).with_ties == 0.0
    # the tolerance is the knob: 1e-5 is tighter than the 1e-4 gap
    assert recall_at_k([[1]], vectors, q, k=1, tolerance=1e-5).with_ties == 0.0
    assert near.describe() == "recall@1 1.0000 (strict 0.0000)"


def test_padding_repeats_and_short_answers_are_not_hits() -> None:
    vectors, _ = random_catalogue(50, d=8)
    q = vectors[:2]
    truth = exact_top_indices(vectors, q, 5)
    padded = [[truth[0][0], -1, -1, 99, truth[0][0]], truth[1][:3]]  # 1 of 5, 3 of 5
    r = recall_at_k(padded, vectors, q, k=5)
    assert r.with_ties == pytest.approx(4 / 10) and r.strict == pytest.approx(4 / 10)
    # more than k answers: only the first k are read
    assert recall_at_k([np.r_[[49] * 5, truth[0]]], vectors, q[:1], k=5).strict <= 0.2


def test_an_index_smaller_than_k_is_scored_on_what_it_holds() -> None:
    vectors, _ = random_catalogue(4, d=8)
    everything = [np.arange(4)] * 3
    assert recall_at_k(everything, vectors, vectors[:3], k=10).with_ties == 1.0
    assert recall_at_k(everything, vectors, vectors[:3], k=10).strict == 1.0


def test_scann_padding_is_masked_by_its_nan_distances() -> None:
    found = np.array([[3, 1, 0, 0]], dtype=np.uint32)  # ScaNN repeats the first docid
    distances = np.array([[0.9, 0.5, np.nan, np.nan]], dtype=np.float32)
    assert rows_of(found, distances)[0].tolist() == [3, 1, -1, -1]
    assert rows_of([["b", "zz"]], None, {"a": 0, "b": 1})[0].tolist() == [1, -1]


def test_negative_tolerance_is_refused() -> None:
    vectors, _ = random_catalogue(10, d=4)
    with pytest.raises(ValueError, match="tolerance"):
        recall_at_k([[0]], vectors, vectors[:1], k=1, tolerance=-1e-3)


# ----------------------------------------------------------------- the index publish gate


def test_exact_search_passes_whatever_its_float_rounding() -> None:
    x, ids = random_catalogue(1_500, d=64)
    searcher = build_searcher(x, ids, IndexParams.for_size(len(x)))  # brute force
    assert measure_recall(searcher, x, ids, k=10, sample=200, tolerance=1e-6).with_ties == 1.0


@pytest.mark.parametrize("groups", [30, 120], ids=["brute-force", "partitioned"])
def test_duplicates_fail_strict_recall_but_pass_the_gate(tmp_path, groups: int) -> None:
    from lookalike.similarity.index import check_recall, publish_searcher

    x, ids = duplicate_catalogue(groups)
    params = IndexParams.for_size(len(x))
    assert (params.num_leaves == 0) == (len(x) < BRUTE_FORCE_BELOW)
    searcher = build_searcher(x, ids, params)
    s = settings(tmp_path)
    recall, _ = check_recall(s, searcher, x, ids)
    assert recall.with_ties == 1.0 and recall.strict < s.index_min_recall

    # the manifest records both; ``recall_at_10`` (what old readers read) is the gating one
    items = pa.table(
        {
            "item_id": ids,
            "category": pa.array([0] * len(ids), pa.int32()),
            "category_name": [""] * len(ids),
            "content_hash": [""] * len(ids),
        }
    )
    _, path, manifest = publish_searcher(s, searcher, x, items, {"kind": "full"})
    assert read_manifest(path) == manifest
    assert manifest["recall_at_10"] == 1.0
    assert manifest["recall_at_10_strict"] == round(recall.strict, 4)
    assert manifest["recall_tolerance"] == s.recall_tolerance


def test_a_searcher_that_misses_neighbours_still_fails_the_gate(tmp_path) -> None:
    from lookalike.similarity.index import check_recall

    x, ids = random_catalogue(3_000)
    one_leaf = IndexParams(num_leaves=50, num_leaves_to_search=1, reorder=10)
    searcher = build_searcher(x, ids, one_leaf)
    with pytest.raises(RecallTooLow, match=r"recall@10 0\.\d+ \(strict 0\.\d+\) < 0\.98"):
        check_recall(settings(tmp_path), searcher, x, ids)
    assert not (tmp_path / "indexes").exists()


def test_the_gate_reads_its_tolerance_from_settings(tmp_path) -> None:
    from lookalike.similarity.index import check_recall

    x, ids = duplicate_catalogue(30)
    searcher = build_searcher(x, ids, IndexParams.for_size(len(x)))
    # tolerance 0: bit-identical copies still tie, the 1e-5 near-duplicates no longer do
    strict_ish, _ = check_recall(
        settings(tmp_path, index_min_recall=0.01, recall_tolerance=0.0), searcher, x, ids
    )
    assert strict_ish.tolerance == 0.0 and strict_ish.with_ties < 1.0
