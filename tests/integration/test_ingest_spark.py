"""Catalogue ingest through real Spark into real Delta tables (shared local[2] session)."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from lookalike import storage
from lookalike.catalog.changes import catalog_changes
from lookalike.catalog.ingest import ingest_fashion_mnist, ingest_folder, run_ingest
from lookalike.catalog.sources import FASHION_MNIST_LABELS
from lookalike.catalog.table import catalog_stats, table_version
from tests.support.builders import write_photo


def rows(settings) -> dict[str, dict]:
    table = DeltaTable(str(settings.catalog_uri)).to_pyarrow_table()
    return {r["item_id"]: r for r in table.to_pylist()}


def test_fashion_mnist_slice_is_ingested_once(spark, settings):
    first = ingest_fashion_mnist(spark, settings=settings, limit=300)
    assert (first.rows_read, first.inserted, first.rejected) == (600, 600, 0)
    assert first.version_before is None and first.version_after == 1

    stats = catalog_stats(settings.catalog_uri)
    assert stats["rows"] == 600 and stats["splits"] == {"test": 300, "train": 300}
    by_name = {c["category_name"]: c["category"] for c in stats["categories"]}
    assert by_name == {n: i for i, n in enumerate(FASHION_MNIST_LABELS)}
    item = rows(settings)["fm-train-00000"]
    assert item["category_name"] == "Ankle boot"  # label 9: the first training record
    assert (item["width"], item["height"], item["channels"]) == (28, 28, 1)

    again = ingest_fashion_mnist(spark, settings=settings, limit=300)
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 600)
    assert again.version_after == 1  # no commit at all, so no change-feed rows
    assert catalog_changes(settings.catalog_uri, 1).empty


def test_folder_ingest_updates_deletes_and_rejects(spark, settings, photo_folder):
    first = ingest_folder(spark, photo_folder, settings=settings)
    assert (first.rows_read, first.inserted, first.rejected) == (39, 36, 3)
    reasons = {r["path"].rsplit("/", 1)[1]: r["reason"] for r in first.reject_examples}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["corrupt.png"].startswith("corrupt image")
    assert reasons["readme.txt"].startswith("not an image")
    rejects = DeltaTable(str(settings.rejects_uri)).to_pyarrow_table()
    assert rejects.num_rows == 3 and set(rejects["run_id"].to_pylist()) == {first.run_id}
    watermark = first.version_after
    assert rows(settings)["Hats-item-3"]["category_name"] == "Hats"
    again = ingest_folder(spark, photo_folder, settings=settings)  # a rerun changes nothing
    assert (again.inserted, again.updated, again.version_after) == (0, 0, watermark)

    # A changed photo, a new photo, a removed photo.
    write_photo(photo_folder / "Hats" / "item 3.jpg", seed=999)
    write_photo(photo_folder / "Hats" / "new hat.png", seed=1000)
    (photo_folder / "Shoes" / "item 5.jpg").unlink()

    kept = ingest_folder(spark, photo_folder, settings=settings)  # no --delete-missing
    assert (kept.inserted, kept.updated, kept.deleted) == (1, 1, 0)
    assert "Shoes-item-5" in rows(settings)

    pruned = ingest_folder(spark, photo_folder, settings=settings, delete_missing=True)
    assert (pruned.inserted, pruned.updated, pruned.deleted) == (0, 0, 1)

    changes = catalog_changes(settings.catalog_uri, watermark)
    assert changes.inserts["item_id"].to_pylist() == ["Hats-new-hat"]
    assert changes.updates["item_id"].to_pylist() == ["Hats-item-3"]
    assert changes.deletes == ["Shoes-item-5"]


def test_delete_missing_only_touches_its_own_source(spark, settings, photo_folder, tmp_path):
    ingest_fashion_mnist(spark, settings=settings, limit=5)
    other = tmp_path / "other"
    write_photo(other / "Shoes" / "a.png", seed=1)
    ingest_folder(spark, other, settings=settings)
    shutil.rmtree(other / "Shoes")
    write_photo(other / "Hats" / "b.png", seed=2)
    summary = ingest_folder(spark, other, settings=settings, delete_missing=True)
    assert (summary.inserted, summary.deleted) == (1, 1)
    assert catalog_stats(settings.catalog_uri)["sources"] == {
        "fashion-mnist": 10,
        "folder:other": 1,
    }


def test_discontinued_items_are_deleted(spark, settings):
    ingest_fashion_mnist(spark, settings=settings, limit=20)
    gone = ["fm-train-00003", "fm-test-00007", "fm-does-not-exist"]
    summary = ingest_fashion_mnist(spark, settings=settings, limit=20, discontinued=gone)
    assert summary.deleted == 2 and summary.inserted == 0
    assert summary.unchanged == 38  # 40 read, 2 of them discontinued
    assert catalog_changes(settings.catalog_uri, 1).deletes == gone[:2][::-1]


def test_metadata_csv_gives_ids_categories_and_reports_problems(spark, settings, photo_folder):
    csv = photo_folder.parent / "products.csv"
    csv.write_text(
        "item_id,category,path\n"
        "sku-001,Sneakers,Shoes/item 0.png\n"
        "sku-002,,Hats/item 1.jpg\n"  # no category: the sub-folder's name
        "sku-003,Sneakers,Shoes/gone.png\n"  # file not found
        "sku-001,Sneakers,Shoes/item 2.png\n"  # duplicate id
    )
    summary = ingest_folder(spark, photo_folder, settings=settings, metadata_csv=csv)
    assert summary.inserted == 1
    got = rows(settings)
    assert list(got) == ["sku-002"] and got["sku-002"]["category_name"] == "Hats"
    rejects = pa.table(DeltaTable(str(settings.rejects_uri)).to_pyarrow_table())
    reasons = rejects["reason"].to_pylist()
    assert reasons.count("duplicate item_id in input (2 files)") == 2
    assert any(r.startswith("file not found: ") and r.endswith("Shoes/gone.png") for r in reasons)
    assert reasons.count("not listed in the metadata CSV") == 36  # 39 files - 3 listed ones


def test_a_job_that_dies_half_way_changes_nothing(spark, settings):
    ingest_fashion_mnist(spark, settings=settings, limit=10)
    before = table_version(settings.catalog_uri)
    from lookalike.catalog.sources import fashion_mnist_frame

    staged = fashion_mnist_frame(spark, settings.fashion_mnist_dir, limit=50)
    boom = F.udf(lambda i: 1 // (0 if i.endswith("00042") else 1), "int")
    poisoned = staged.where(boom("item_id") == 1)  # record 42 kills its executor task
    with pytest.raises(Exception, match="ZeroDivisionError"):
        run_ingest(spark, poisoned, source="fashion-mnist", settings=settings)
    assert table_version(settings.catalog_uri) == before
    assert storage.listdir(settings.staging_uri) == []  # the run's scratch space is gone
