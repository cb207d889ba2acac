"""The embeddings change feed (a real local Delta table, no Spark) and the searcher it updates
in place: upserts, replacements, deletes, refused vectors, and searches during updates."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from lookalike.similarity.feed import FEED_SCHEMA, latest_version, net_changes, read_feed

D = 8
ENC = SimpleNamespace(name="enc", version="1", embedding_size=D)
OTHER = SimpleNamespace(name="enc", version="2", embedding_size=D)


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def commit(uri: str, encoder=ENC, *, upserts=(), vectors=None, deletes=(), catalog_version=1):
    """One MERGE into ``embeddings`` (what the Spark embed and the re-index commit)."""
    from lookalike.similarity.embeddings import merge_embeddings, staged_rows

    ids = list(upserts)
    vectors = np.zeros((0, D), np.float32) if vectors is None else vectors
    rows = staged_rows(
        encoder,
        catalog_version,
        upserts=(ids, [f"h{i}{vectors[j][0]}" for j, i in enumerate(ids)], vectors),
        deletes=deletes,
    )
    merge_embeddings(uri, rows, commit_metadata={})
    return latest_version(uri)


def feed_rows(rows: list[tuple]) -> pa.Table:
    """FEED_SCHEMA rows: (item_id, embedding, change type, commit version)."""
    return pa.table(
        {
            "item_id": [r[0] for r in rows],
            "encoder_name": ["enc"] * len(rows),
            "encoder_version": ["1"] * len(rows),
            "embedding": [r[1] for r in rows],
            "catalog_version": [1] * len(rows),
            "_change_type": [r[2] for r in rows],
            "_commit_version": [r[3] for r in rows],
        },
        schema=FEED_SCHEMA,
    )


def test_net_changes_keep_the_last_change_per_item_and_refuse_bad_vectors():
    ok, other = [0.5] * D, [0.25] * D
    feed = feed_rows(
        [
            ("a", ok, "insert", 3),
            ("a", ok, "update_preimage", 4),
            ("a", other, "update_postimage", 4),  # replaced: the post-image wins
            ("b", ok, "insert", 3),
            ("b", ok, "delete", 5),  # deleted after it came: a delete
            ("nan", [float("nan")] + [0.0] * (D - 1), "insert", 3),
            ("inf", [float("inf")] * D, "insert", 3),
            ("short", [1.0, 0.0], "insert", 3),
            ("none", None, "insert", 3),
            (None, ok, "insert", 3),
        ]
    )
    c = net_changes(feed, D, 2, 5)
    assert c.upserts == ["a"] and c.vectors.shape == (1, D) and c.vectors[0][0] == 0.25
    assert c.deletes == ["b"] and (c.since_version, c.until_version) == (2, 5)
    kinds = {s.item_id: s.kind for s in c.skipped}
    assert kinds == {
        "nan": "not_finite",
        "inf": "not_finite",
        "short": "dimension",
        "none": "no_vector",
        None: "no_item_id",
    }
    assert "the index has 8" in next(s.reason for s in c.skipped if s.kind == "dimension")


def test_read_feed_follows_one_encoder_from_a_version(tmp_path):
    uri = str(tmp_path / "embeddings")
    rng = np.random.default_rng(0)
    v0 = commit(uri, upserts=["a", "b", "c"], vectors=unit(rng, 3))
    v1 = commit(uri, upserts=["d"], vectors=unit(rng, 1), catalog_version=2)
    commit(uri, OTHER, upserts=["z"], vectors=unit(rng, 1))  # another encoder: not ours
    v3 = commit(uri, upserts=["a"], vectors=unit(rng, 1), deletes=["b"], catalog_version=3)
    assert v1 == v0 + 1 and v3 == v0 + 3
    c = read_feed(uri, ("enc", "1"), D, v0, v3)
    assert c.upserts == ["a", "d"] and c.deletes == ["b"] and c.catalog_version == 3
    assert c.skipped == []
    assert read_feed(uri, ("enc", "1"), D, v3, v3).empty
    only_other = read_feed(uri, ("enc", "1"), D, v1, v1 + 1)
    assert only_other.empty and only_other.until_version == v1 + 1  # the version still moves
    nan = np.full((1, D), np.nan, np.float32)
    v4 = commit(uri, upserts=["e", "f"], vectors=np.concatenate([nan, unit(rng, 1)]))
    c = read_feed(uri, ("enc", "1"), D, v3, v4)
    assert c.upserts == ["f"] and [s.item_id for s in c.skipped] == ["e"]


@pytest.fixture
def rec():
    """A small Recommender over a ScaNN searcher with docids (as a bundle has), at
    embeddings version 10."""
    from lookalike.index.scann_index import IndexParams, build_searcher
    from lookalike.similarity.bundle import Recommender

    rng = np.random.default_rng(1)
    n = 400
    v = unit(rng, n)
    ids = [f"i{j:03d}" for j in range(n)]
    items = pa.table(
        {
            "item_id": ids,
            "category": pa.array([j % 3 for j in range(n)], pa.int32()),
            "category_name": [f"c{j % 3}" for j in range(n)],
        }
    )
    manifest = {
        "encoder": {"name": "enc", "version": "1", "input_size": 4, "channels": 1},
        "index_version": "v000001",
        "catalog_version": 3,
        "embeddings_version": 10,
        "dimension": D,
    }
    searcher = build_searcher(
        v, ids, IndexParams(num_leaves=20, num_leaves_to_search=20, reorder=100)
    )
    return Recommender(lambda x: np.tile(v[0], (len(x), 1)), searcher, v, items, manifest)


def changes(since, until, upserts=(), vectors=None, deletes=()):
    from lookalike.similarity.feed import FeedChanges

    vectors = np.zeros((0, D), np.float32) if vectors is None else vectors
    return FeedChanges(since, until, list(upserts), vectors, 4, list(deletes))


def test_apply_adds_replaces_and_deletes_in_place(rec):
    from lookalike.similarity.bundle import StaleChanges

    rng = np.random.default_rng(2)
    new, moved = unit(rng, 2)
    far = rec.vectors[7].copy()
    applied = rec.apply(
        changes(10, 12, ["new", "i005"], np.stack([new, far]), ["i009", "gone-already"]),
        {"new": (7, "Sneaker"), "i005": (1, "c1")},
    )
    assert (applied.added, applied.replaced, applied.deleted) == (1, 1, 1)
    assert rec.embeddings_version == 12 and rec.versions()["embeddings_version"] == 12
    assert rec.item("new").category_name == "Sneaker" and len(rec) == 400
    top = rec.search(new[None, :], 1)[0][0]
    assert top.item_id == "new" and top.score == pytest.approx(1.0, abs=1e-3)
    # i005 now sits where i007 is: they find each other
    assert {h.item_id for h in rec.similar_to_items(["i005"], 1)[0]} == {"i007"}
    with pytest.raises(KeyError):
        rec.item("i009")
    assert all(h.item_id != "i009" for h in rec.search(rec.vectors[9][None, :], 20)[0])
    assert all(h.item_id != "i009" for h in rec.search(rec.vectors[9][None, :], 20, category=0)[0])
    assert rec.similar_to_items(["new"], 3, category=7)[0] == []  # alone in its category
    assert rec.category_counts()[7] == 1 and sum(rec.category_counts().values()) == 400
    assert "i009" not in rec.live_ids() and "new" in rec.live_ids()
    with pytest.raises(StaleChanges):
        rec.apply(changes(10, 12), {})
    # an upsert the catalogue has no row for is left out, the rest applies
    done = rec.apply(changes(12, 13, ["lost"], moved[None, :]), {})
    assert done.no_facts == ["lost"] and rec.embeddings_version == 13
    with pytest.raises(KeyError):
        rec.item("lost")


def test_rows_grow_past_their_capacity(rec):
    rng = np.random.default_rng(3)
    vectors = unit(rng, 500)
    ids = [f"n{j}" for j in range(500)]
    rec.apply(changes(10, 11, ids, vectors), {i: (0, "c0") for i in ids})
    assert len(rec) == 900 and rec.vectors.shape == (900, D)
    assert rec.similar_to_items(["n499"], 1, exclude_self=False)[0][0].item_id == "n499"
    assert rec.searcher.size() == 900


def test_searches_during_updates_stay_correct(rec):
    """Searches on 4 threads while another upserts and deletes: no crash, every answer
    holds live items only, and nothing deleted comes back once its delete applied."""
    rng = np.random.default_rng(4)
    stop = threading.Event()
    errors: list[BaseException] = []
    deleted: set[str] = set()

    def search() -> None:
        q = rec.vectors[:8].copy()
        while not stop.is_set():
            try:
                gone = set(deleted)
                for hits in rec.search(q, 10):
                    assert len(hits) == 10
                    assert not {h.item_id for h in hits} & gone
            except BaseException as e:
                errors.append(e)
                return

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    version = 10
    for step in range(30):
        ids = [f"s{step}-{j}" for j in range(20)]
        victims = [f"i{(step * 7 + j) % 400:03d}" for j in range(3)]
        rec.apply(
            changes(version, version + 1, ids, unit(rng, 20), victims),
            {i: (step % 3, f"c{step % 3}") for i in ids},
        )
        deleted.update(victims)
        version += 1
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[:1]
    assert rec.embeddings_version == 40 and rec.searcher.size() == len(rec)


def test_the_guard_lets_readers_share_and_a_writer_wait():
    from lookalike.index.guard import ReadWriteLock

    lock = ReadWriteLock()
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def reader() -> None:
        with lock.read():
            inside.set()
            release.wait(5)
            order.append("reader out")

    def writer() -> None:
        with lock.write():
            order.append("writer in")

    r = threading.Thread(target=reader)
    r.start()
    inside.wait(5)
    with lock.read():  # a second reader shares it
        order.append("second reader")
    w = threading.Thread(target=writer)
    w.start()
    w.join(0.2)
    assert w.is_alive()  # the writer waits for the reader inside
    release.set()
    r.join(5)
    w.join(5)
    assert order == ["second reader", "reader out", "writer in"]


def test_a_wide_index_answers_exact_scores_in_exact_order(rec):
    """A wide index (bfloat16 re-ordering) scores ~1e-3 off; the service re-scores its
    candidates from the float32 vectors, so scores and order are exact."""
    from dataclasses import replace

    from lookalike.index.scann_index import WIDE, IndexParams, build_searcher

    params = replace(IndexParams(num_leaves=20, num_leaves_to_search=20, reorder=100), **WIDE)
    rec.searcher = build_searcher(rec.vectors, rec.item_ids, params)
    queries = rec.vectors[:20]
    for q, hits in zip(queries, rec.search(queries, 10), strict=True):
        exact = rec.vectors @ q
        top = np.argsort(-exact)[:10]
        assert [h.item_id for h in hits] == [rec.item_ids[j] for j in top]
        assert [h.score for h in hits] == pytest.approx(exact[top].tolist(), abs=1e-6)
