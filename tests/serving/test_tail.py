"""The service's change-feed follower over REAL Delta tables (catalogue and embeddings, local,
no Spark) and a real ScaNN searcher: a new item becomes searchable with its photo and
category, a replaced one moves, a deleted one is gone, a bad vector is skipped and counted,
and a process that starts later (a restart, a new snapshot) reaches the same answers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lookalike.catalog.photos import CatalogPhotos
from lookalike.config import Settings
from serving.metrics import Metrics
from serving.state import Live
from serving.tail import FeedFollower, catch_up, step
from tests.unit.test_feed import D, commit, unit

N = 300


def catalog_rows(ids: list[str], category: int = 0, name: str = "c0") -> pa.Table:
    return pa.table(
        {
            "item_id": ids,
            "category": pa.array([category] * len(ids), pa.int32()),
            "category_name": [name] * len(ids),
            "image": [f"png:{i}".encode() for i in ids],
        }
    )


@pytest.fixture
def world(tmp_path):
    """A catalogue of N items, their embeddings, and a snapshot of both (version numbers)."""
    settings = Settings(home=tmp_path / "home")
    rng = np.random.default_rng(0)
    ids = [f"i{j:03d}" for j in range(N)]
    vectors = unit(rng, N)
    write_deltalake(settings.catalog_uri, catalog_rows(ids))
    version = commit(settings.embeddings_uri, upserts=ids, vectors=vectors, catalog_version=0)
    return settings, ids, vectors, version


def snapshot(settings: Settings, ids: list[str], vectors: np.ndarray, version: int) -> Live:
    """What the service loads: a Recommender at ``version`` and the catalogue's photos."""
    from lookalike.index.scann_index import IndexParams, build_searcher
    from lookalike.similarity.bundle import Recommender

    items = pa.table(
        {
            "item_id": ids,
            "category": pa.array([0] * len(ids), pa.int32()),
            "category_name": ["c0"] * len(ids),
        }
    )
    manifest = {
        "encoder": {"name": "enc", "version": "1", "input_size": 4, "channels": 1},
        "index_version": "v000001",
        "catalog_version": 0,
        "embeddings_version": version,
        "dimension": D,
    }
    params = IndexParams(num_leaves=10, num_leaves_to_search=10, reorder=100)
    searcher = build_searcher(vectors, ids, params)
    rec = Recommender(lambda x: vectors[:1], searcher, vectors, items, manifest, "1")
    photos = CatalogPhotos(settings.catalog_uri, 0, set(ids))
    return Live(rec=rec, bundle_version="1", loaded_at=datetime.now(UTC), photos=photos)


def test_new_replaced_and_deleted_items_follow_the_feed(world):
    settings, ids, vectors, version = world
    live = snapshot(settings, ids, vectors, version)
    metrics = Metrics()
    assert step(settings, live.rec, live.photos, metrics) is None  # nothing new yet
    rng = np.random.default_rng(1)
    new = unit(rng, 1)
    write_deltalake(settings.catalog_uri, catalog_rows(["new"], 7, "Sneaker"), mode="append")
    commit(settings.embeddings_uri, upserts=["new"], vectors=new, catalog_version=1)
    applied = step(settings, live.rec, live.photos, metrics)
    assert applied is not None and applied.added == 1
    top = live.rec.search(new, 1)[0][0]
    assert (top.item_id, top.category, top.category_name) == ("new", 7, "Sneaker")
    assert live.photos.get("new") == b"png:new"
    assert live.versions()["embeddings_version"] == version + 1
    assert live.category_counts[7] == 1

    # replaced: i005 gets i007's vector (the catalogue row rewritten), i009 deleted
    DeltaTable(settings.catalog_uri).update(
        predicate="item_id = 'i005'", new_values={"image": "X'ff'"}
    )
    DeltaTable(settings.catalog_uri).delete("item_id = 'i009'")
    commit(
        settings.embeddings_uri,
        upserts=["i005"],
        vectors=vectors[7:8] * 1.0,
        deletes=["i009"],
        catalog_version=3,
    )
    applied = step(settings, live.rec, live.photos, metrics)
    assert (applied.replaced, applied.deleted) == (1, 1)
    assert live.rec.similar_to_items(["i005"], 1)[0][0].item_id == "i007"
    rows = DeltaTable(settings.catalog_uri).to_pyarrow_table().to_pylist()
    now = next(r["image"] for r in rows if r["item_id"] == "i005")
    assert live.photos.get("i005") == now != b"png:i005"
    with pytest.raises(KeyError):
        live.rec.item("i009")
    assert metrics.feed_version._value.get() == version + 2
    assert metrics.feed_changes.labels("added")._value.get() == 1
    assert metrics.feed_changes.labels("deleted")._value.get() == 1


def test_a_bad_vector_is_skipped_and_counted_and_the_rest_applies(world, caplog):
    settings, ids, vectors, version = world
    live = snapshot(settings, ids, vectors, version)
    metrics = Metrics()
    write_deltalake(settings.catalog_uri, catalog_rows(["nan", "good"]), mode="append")
    bad = np.full((1, D), np.nan, np.float32)
    commit(
        settings.embeddings_uri,
        upserts=["nan", "good"],
        vectors=np.concatenate([bad, unit(np.random.default_rng(2), 1)]),
    )
    applied = step(settings, live.rec, live.photos, metrics)
    assert applied.added == 1 and "good" in live.rec.row and "nan" not in live.rec.row
    assert metrics.feed_skipped.labels("not_finite")._value.get() == 1
    assert "skipped nan: vector holds NaN or infinity" in caplog.text
    # an embedding whose catalogue row is gone (deleted meanwhile) is skipped too
    ghost = unit(np.random.default_rng(3), 1)
    commit(settings.embeddings_uri, upserts=["ghost"], vectors=ghost, catalog_version=1)
    applied = step(settings, live.rec, live.photos, metrics)
    assert applied.no_facts == ["ghost"] and "ghost" not in live.rec.row
    assert metrics.feed_skipped.labels("not_in_catalogue")._value.get() == 1


def answers(live: Live, queries: np.ndarray) -> list[list[str]]:
    return [[h.item_id for h in hits] for hits in live.rec.search(queries, 10)]


def test_a_restart_and_a_newer_snapshot_reach_the_same_answers(world):
    settings, ids, vectors, version = world
    running = snapshot(settings, ids, vectors, version)
    rng = np.random.default_rng(4)
    added: dict[str, np.ndarray] = {}
    for k in range(25):  # 25 commits: more than one bounded step
        name = f"n{k}"
        added[name] = unit(rng, 1)[0]
        write_deltalake(settings.catalog_uri, catalog_rows([name]), mode="append")
        commit(
            settings.embeddings_uri,
            upserts=[name],
            vectors=added[name][None, :],
            deletes=[f"i{k:03d}"],
            catalog_version=k + 1,
        )
        if k == 12:
            catch_up(settings, running.rec, running.photos)  # the long-running process
    catch_up(settings, running.rec, running.photos)
    latest = version + 25
    assert running.rec.embeddings_version == latest and len(running.rec) == N
    queries = np.stack([*list(added.values())[:5], vectors[100]])

    restarted = snapshot(settings, ids, vectors, version)  # killed mid-way: from its snapshot
    catch_up(settings, restarted.rec, restarted.photos)
    assert restarted.rec.embeddings_version == latest
    assert answers(restarted, queries) == answers(running, queries)

    # a snapshot written at version + 12 (what the nightly writes) then tails the rest
    keep = [i for i in ids if i not in {f"i{k:03d}" for k in range(13)}]
    mid_ids = sorted(keep + [f"n{k}" for k in range(13)])
    table = {i: vectors[int(i[1:])] for i in keep} | {f"n{k}": added[f"n{k}"] for k in range(13)}
    newer = snapshot(settings, mid_ids, np.stack([table[i] for i in mid_ids]), version + 13)
    catch_up(settings, newer.rec, newer.photos)
    assert newer.rec.embeddings_version == latest
    assert answers(newer, queries) == answers(running, queries)


def test_the_follower_thread_applies_within_its_poll(world):
    settings, ids, vectors, version = world
    settings = settings.model_copy(update={"serve_tail_seconds": 0.2})
    live = snapshot(settings, ids, vectors, version)
    state = type("State", (), {"settings": settings, "metrics": Metrics(), "live": live})()
    follower = FeedFollower(state)
    follower.start()
    try:
        write_deltalake(settings.catalog_uri, catalog_rows(["late"]), mode="append")
        vector = unit(np.random.default_rng(5), 1)
        commit(settings.embeddings_uri, upserts=["late"], vectors=vector, catalog_version=1)
        deadline = time.monotonic() + 20
        while "late" not in live.rec.row and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.rec.item("late").item_id == "late"
    finally:
        follower.stop()
