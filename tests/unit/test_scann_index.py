"""ScaNN searchers, recall check and index versions on disk (synthetic embeddings)."""

import re
from dataclasses import asdict

import numpy as np
import pytest

from lookalike.index.scann_index import (
    IndexParams,
    IndexVersionError,
    build_searcher,
    exact_neighbours,
    load_version,
    measure_recall,
    write_version,
)


def clustered(
    n: int, d: int = 32, clusters: int = 20, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x, [f"item-{i:05d}" for i in range(n)]


def test_parameters_grow_with_the_catalogue():
    assert IndexParams.for_size(500).num_leaves == 0  # small: exact
    assert IndexParams.for_size(60_000).num_leaves == 245
    assert IndexParams.for_size(10_000_000).num_leaves == 2000


def test_small_index_agrees_with_brute_force():
    x, ids = clustered(300)
    searcher = build_searcher(x, ids, IndexParams.for_size(len(x)))
    found, _ = searcher.search_batched(x[:20], final_num_neighbors=5)
    assert [list(f) for f in found] == exact_neighbours(x, ids, x[:20], 5)


def test_partitioned_index_has_high_recall():
    x, ids = clustered(20_000)
    searcher = build_searcher(x, ids, IndexParams.for_size(len(x)))
    recall = measure_recall(searcher, x, ids, k=10, sample=300)
    assert recall.strict >= 0.95 and recall.with_ties >= recall.strict


def test_version_round_trip_keeps_updates_and_refuses_damage(tmp_path):
    x, ids = clustered(3_000)
    searcher = build_searcher(x, ids, IndexParams.for_size(len(x)))
    searcher.delete(["item-00000"])
    searcher.upsert(["new-item"], x[:1])
    manifest = write_version(
        tmp_path / "v1",
        searcher,
        {"index_version": 1, "params": asdict(IndexParams.for_size(3000))},
    )
    assert manifest["size"] == 3_000 and manifest["files"]

    loaded, again = load_version(tmp_path / "v1")
    assert again == manifest
    top, _ = loaded.search(x[0], final_num_neighbors=1)
    assert list(top) == ["new-item"]

    with pytest.raises(IndexVersionError, match="already exists"):
        write_version(tmp_path / "v1", searcher, {})
    victim = next((tmp_path / "v1" / "searcher").iterdir())
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    with pytest.raises(
        IndexVersionError, match=re.escape(f"checksum mismatch for searcher/{victim.name}")
    ):
        load_version(tmp_path / "v1")
    with pytest.raises(IndexVersionError, match=r"no manifest\.json"):
        load_version(tmp_path)


def test_upsert_and_delete_on_a_partitioned_index_match_brute_force():
    x, ids = clustered(5_000)
    searcher = build_searcher(x, ids, IndexParams.for_size(len(x)))
    rng = np.random.default_rng(1)
    moved = (x[:50] + 0.5 * rng.normal(size=(50, x.shape[1]))).astype(np.float32)
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    searcher.delete(ids[50:100])
    searcher.upsert(ids[:50], moved)
    now_x, now_ids = np.concatenate([moved, x[100:]]), ids[:50] + ids[100:]
    found, _ = searcher.search_batched(now_x[:200], final_num_neighbors=10)
    assert not {i for f in found for i in f} & set(ids[50:100])
    assert measure_recall(searcher, now_x, now_ids, k=10, sample=300).strict >= 0.95


def test_leaves_ladder_steps_by_root_two_down_to_the_least():
    from lookalike.index.scann_index import leaves_ladder

    assert leaves_ladder(62) == [4, 6, 8, 11, 16, 22, 31, 44, 62]
    assert leaves_ladder(10) == [4, 5, 7, 10]
    assert leaves_ladder(3) == [3]


def test_tuning_finds_cheaper_settings_at_the_target_recall():
    from dataclasses import replace

    from lookalike.index.scann_index import SearchTuning, tune

    x, ids = clustered(20_000)
    params = replace(IndexParams.for_size(len(x)), num_leaves_to_search=40)  # a generous ceiling
    searcher = build_searcher(x, ids, params)
    tuning, recall = tune(searcher, x, ids, asdict(params), want=0.99)
    assert tuning.leaves_to_search is not None and tuning.leaves_to_search < 40
    assert tuning.reorder is not None and tuning.reorder <= params.reorder
    assert recall.with_ties >= 0.99
    # the same measurement at that setting, and one step fewer partitions misses the target
    assert measure_recall(searcher, x, ids, tuning=tuning).with_ties == recall.with_ties
    fewer = replace(tuning, leaves_to_search=tuning.leaves_to_search // 2, reorder=params.reorder)
    if fewer.leaves_to_search >= 4:
        assert measure_recall(searcher, x, ids, tuning=fewer).with_ties < 0.99
    # an unreachable target keeps the ceiling, and an exact index has nothing to tune
    ceiling, _ = tune(searcher, x, ids, asdict(params), want=1.01)
    assert ceiling == SearchTuning(40, params.reorder)
    exact = build_searcher(x[:500], ids[:500], IndexParams.for_size(500))
    assert tune(exact, x[:500], ids[:500], asdict(IndexParams.for_size(500)), want=0.99)[0] == (
        SearchTuning()
    )


def test_tuning_never_reorders_fewer_candidates_than_asked_for():
    from lookalike.index.scann_index import SearchTuning

    assert SearchTuning(7, 50).options(k=101) == {
        "leaves_to_search": 7,
        "pre_reorder_num_neighbors": 101,
    }
    assert SearchTuning(7, 50).options() == {"leaves_to_search": 7, "pre_reorder_num_neighbors": 50}
    assert SearchTuning().options() == {}


def test_tuning_searches_exactly_once_for_every_step(monkeypatch):
    """The exact answers are most of a recall measurement's cost (items x dimension): tuning
    measures one query sample at several settings, so it computes them once."""
    from dataclasses import replace

    import lookalike.index.recall as recall_module
    import lookalike.index.scann_index as sx

    x, ids = clustered(5_000)
    params = replace(IndexParams.for_size(len(x)), num_leaves_to_search=16)
    searcher = build_searcher(x, ids, params)
    calls, measured = [], []
    real, real_recall = sx.exact_top_indices, sx.recall_at_k
    for module in (sx, recall_module):  # the probe's, and recall_at_k's own without one
        monkeypatch.setattr(module, "exact_top_indices", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(
        sx, "recall_at_k", lambda *a, **k: measured.append(1) or real_recall(*a, **k)
    )
    tuning, recall = sx.tune(searcher, x, ids, asdict(params), want=0.999)
    assert len(measured) >= 2 and len(calls) == 1  # several settings, one exact search
    monkeypatch.undo()
    assert recall == measure_recall(searcher, x, ids, tuning=tuning)  # as a fresh measurement


def test_wide_vectors_get_two_dim_blocks_and_bfloat16_reordering():
    from lookalike.index.scann_index import WIDE, WIDE_FROM_DIM

    wide = IndexParams.for_size(60_000, 384)
    assert (wide.ah_dims, wide.reorder_type, wide.int8_centroids) == (2, "bfloat16", True)
    assert wide == IndexParams.for_size(60_000, WIDE_FROM_DIM)
    narrow = IndexParams.for_size(60_000, WIDE_FROM_DIM - 1)
    assert narrow == IndexParams.for_size(60_000)  # the settings versions were built with
    assert all(getattr(narrow, k) != v for k, v in WIDE.items())
    assert IndexParams.for_size(500, 384).num_leaves == 0  # exact: nothing to quantise
    with pytest.raises(ValueError, match="reorder_type: 'fp8'"):
        IndexParams(num_leaves=10, num_leaves_to_search=1, reorder=10, reorder_type="fp8")
