"""The fresh path's driver ingest writes what the Spark ingest would: after it, a Spark
ingest of the same landing folder finds nothing to change."""

from __future__ import annotations

from deltalake import DeltaTable

from lookalike.catalog import landing
from lookalike.catalog.ingest import ingest_folder
from lookalike.catalog.small_ingest import ingest_small
from tests.support.builders import write_photo


def rows(settings) -> dict[str, dict]:
    table = DeltaTable(str(settings.catalog_uri)).to_pyarrow_table()
    return {r["item_id"]: r for r in table.to_pylist()}


def test_a_few_changed_files_commit_what_the_spark_ingest_would(spark, settings, tmp_path):
    land = tmp_path / "landing"
    for i in range(6):
        write_photo(land / ("Hats" if i % 2 else "Bags") / f"p{i}.png", seed=i)
    ingest_folder(spark, land, settings=settings, source="landing", delete_missing=True)
    before = landing.list_files(str(land))
    first = rows(settings)

    write_photo(land / "Hats" / "p1.png", seed=100, size=(40, 30))  # replaced
    write_photo(land / "Shoes" / "new one.png", seed=101)  # new, in a new category
    (land / "Bags" / "p2.png").unlink()  # removed
    now = landing.list_files(str(land))
    done = ingest_small(settings, str(land), "landing", now, before, most=10)

    assert done is not None
    assert (done.inserted, done.updated, done.deleted) == (1, 1, 1)
    assert done.version_after == done.version_before + 1  # one commit
    after = rows(settings)
    assert "Bags-p2" not in after and after["Shoes-new-one"]["category_name"] == "Shoes"
    assert after["Hats-p1"]["content_hash"] != first["Hats-p1"]["content_hash"]
    assert after["Hats-p1"]["width"] == 40
    assert after["Shoes-new-one"]["category"] not in {r["category"] for r in first.values()}
    assert after["Bags-p0"] == first["Bags-p0"]

    again = ingest_small(settings, str(land), "landing", now, now, most=10)
    assert again is not None and again.version_after == done.version_after  # no commit
    by_spark = ingest_folder(spark, land, settings=settings, source="landing", delete_missing=True)
    assert (by_spark.inserted, by_spark.updated, by_spark.deleted) == (0, 0, 0)
    assert by_spark.version_after == done.version_after
