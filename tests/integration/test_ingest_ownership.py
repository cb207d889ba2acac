"""Which source owns a product: collisions between feeds, take-over, id prefixes (real Spark,
real Delta). Two folders with the same relative paths stand for two merged retailer feeds."""

from __future__ import annotations

from pathlib import Path

from deltalake import DeltaTable

from lookalike.catalog.changes import catalog_changes
from lookalike.catalog.ingest import ingest_folder, owned_reason
from lookalike.catalog.table import catalog_stats, table_version
from tests.support.builders import write_photo

OWNED_BY_LANDING = "item id owned by source 'landing'"


def rows(settings) -> dict[str, dict]:
    table = DeltaTable(str(settings.catalog_uri)).to_pyarrow_table()
    return {r["item_id"]: r for r in table.to_pylist()}


def feed(root: Path, names: list[str], seed: int) -> Path:
    """A folder of photos at the given relative paths (pixels differ per seed)."""
    for i, name in enumerate(names):
        write_photo(root / name, seed=seed + i)
    return root


def landing_then(spark, settings, tmp_path: Path, conc_names: list[str]) -> tuple[Path, Path]:
    """Ingest ``landing`` (Shoes/a, Shoes/b, Hats/c) as source ``landing``; return both
    folders, ``conc`` holding ``conc_names`` with other pixels."""
    landing = feed(tmp_path / "landing", ["Shoes/a.png", "Shoes/b.png", "Hats/c.png"], seed=1)
    conc = feed(tmp_path / "conc", conc_names, seed=50)
    first = ingest_folder(spark, landing, settings=settings, source="landing")
    assert (first.inserted, first.rejected) == (3, 0)
    return landing, conc


def test_colliding_rows_are_rejected_and_nothing_changes(spark, settings, tmp_path):
    _, conc = landing_then(spark, settings, tmp_path, ["Shoes/a.png", "Shoes/b.png"])
    before = rows(settings)
    version = table_version(settings.catalog_uri)

    second = ingest_folder(spark, conc, settings=settings, source="conc")
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 0)
    assert (second.rejected, second.taken_over) == (2, 0)
    assert {r["reason"] for r in second.reject_examples} == {OWNED_BY_LANDING}
    assert owned_reason("landing") == OWNED_BY_LANDING
    assert second.version_after == version  # nothing else changed: no commit at all
    assert rows(settings) == before

    rejects = DeltaTable(str(settings.rejects_uri)).to_pyarrow_table().to_pylist()
    assert sorted((r["item_id"], r["source"], r["reason"]) for r in rejects) == [
        ("Shoes-a", "conc", OWNED_BY_LANDING),
        ("Shoes-b", "conc", OWNED_BY_LANDING),
    ]
    assert {r["run_id"] for r in rejects} == {second.run_id}

    # the owner itself re-ingesting is still a no-op; its counts are unaffected
    again = ingest_folder(spark, tmp_path / "landing", settings=settings, source="landing")
    assert (again.unchanged, again.rejected, again.version_after) == (3, 0, version)


def test_take_over_moves_every_collision_in_one_commit(spark, settings, tmp_path):
    _, conc = landing_then(spark, settings, tmp_path, ["Shoes/a.png", "Shoes/b.png", "Bags/n.png"])
    version = table_version(settings.catalog_uri)

    moved = ingest_folder(spark, conc, settings=settings, source="conc", take_over=True)
    assert (moved.inserted, moved.updated, moved.taken_over, moved.rejected) == (1, 2, 2, 0)
    assert moved.version_after == version + 1  # inserts and take-overs: one MERGE commit
    got = rows(settings)
    assert {i: r["source"] for i, r in got.items()} == {
        "Shoes-a": "conc",
        "Shoes-b": "conc",
        "Hats-c": "landing",
        "Bags-n": "conc",
    }
    changes = catalog_changes(settings.catalog_uri, version)
    assert sorted(changes.updates["item_id"].to_pylist()) == ["Shoes-a", "Shoes-b"]
    assert changes.inserts["item_id"].to_pylist() == ["Bags-n"]

    # taken-over products now belong to conc: landing's next run is the one refused
    back = ingest_folder(spark, tmp_path / "landing", settings=settings, source="landing")
    assert (back.rejected, back.unchanged, back.version_after) == (2, 1, version + 1)
    assert {r["reason"] for r in back.reject_examples} == {"item id owned by source 'conc'"}


def test_take_over_of_listed_ids_moves_only_those(spark, settings, tmp_path):
    _, conc = landing_then(spark, settings, tmp_path, ["Shoes/a.png", "Shoes/b.png", "Hats/c.png"])
    version = table_version(settings.catalog_uri)

    moved = ingest_folder(
        spark, conc, settings=settings, source="conc", take_over=["Shoes-b", "not-colliding"]
    )
    assert (moved.updated, moved.taken_over, moved.rejected, moved.unchanged) == (1, 1, 2, 0)
    assert moved.version_after == version + 1
    assert {r["item_id"] for r in moved.reject_examples} == {"Shoes-a", "Hats-c"}
    assert {i: r["source"] for i, r in rows(settings).items()} == {
        "Shoes-a": "landing",
        "Shoes-b": "conc",
        "Hats-c": "landing",
    }


def test_id_prefix_keeps_both_feeds(spark, settings, tmp_path):
    _, conc = landing_then(spark, settings, tmp_path, ["Shoes/a.png", "Shoes/b.png"])

    second = ingest_folder(spark, conc, settings=settings, source="conc", id_prefix="conc-")
    assert (second.inserted, second.updated, second.rejected) == (2, 0, 0)
    got = rows(settings)
    assert got["conc-Shoes-a"]["source"] == "conc" and got["Shoes-a"]["source"] == "landing"
    assert got["conc-Shoes-a"]["content_hash"] != got["Shoes-a"]["content_hash"]
    assert catalog_stats(settings.catalog_uri)["sources"] == {"conc": 2, "landing": 3}


def test_delete_missing_of_either_source_never_touches_the_other(spark, settings, tmp_path):
    landing, conc = landing_then(spark, settings, tmp_path, ["Shoes/a.png", "Hats/d.png"])
    ingest_folder(spark, conc, settings=settings, source="conc", take_over=["Shoes-a"])
    assert rows(settings)["Shoes-a"]["source"] == "conc"

    # landing no longer has a.png: but Shoes-a is conc's now, so landing cannot delete it
    (landing / "Shoes" / "a.png").unlink()
    pruned = ingest_folder(spark, landing, settings=settings, source="landing", delete_missing=True)
    assert (pruned.deleted, pruned.unchanged) == (0, 2)
    # conc's input has neither of landing's items: deleting its own missing one touches only it
    (conc / "Hats" / "d.png").unlink()
    pruned = ingest_folder(spark, conc, settings=settings, source="conc", delete_missing=True)
    assert (pruned.deleted, pruned.unchanged) == (1, 1)
    assert {i: r["source"] for i, r in rows(settings).items()} == {
        "Shoes-a": "conc",
        "Shoes-b": "landing",
        "Hats-c": "landing",
    }
