"""When the driver ingest hands over to the Spark ingest (None, nothing written)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from lookalike.catalog import landing
from lookalike.catalog.small_ingest import changed_files, ingest_small
from lookalike.catalog.table import CHANGE_SCHEMA, merge_changes, table_version
from lookalike.config import Settings
from tests.support.builders import write_photo
from tests.support.tables import change


def _home(tmp_path, owner: str = "landing") -> tuple[Settings, str, landing.Files]:
    """A catalogue holding Hats-a (of ``owner``) and a landing folder listing it."""
    settings = Settings(home=tmp_path / "home")
    land = tmp_path / "landing"
    write_photo(land / "Hats" / "a.png", seed=1)
    stage = tmp_path / "stage"
    stage.mkdir()
    row = change("Hats-a", cat="Hats") | {"source": owner}
    pq.write_table(pa.Table.from_pylist([row], schema=CHANGE_SCHEMA), stage / "c.parquet")
    merge_changes(str(settings.catalog_uri), str(stage), commit_metadata={})
    return settings, str(land), landing.list_files(str(land))


def test_changed_files_are_added_replaced_and_removed():
    before = {"a": (1, 1.0), "b": (1, 1.0), "c": (1, 1.0)}
    now = {"a": (1, 1.0), "b": (2, 1.0), "d": (1, 2.0)}
    assert changed_files(now, before) == (["b", "d"], ["c"])


def test_no_ingested_listing_too_many_changes_or_a_refused_photo_go_to_spark(tmp_path):
    settings, land, before = _home(tmp_path)
    write_photo(tmp_path / "landing" / "Hats" / "b.png", seed=2)
    write_photo(tmp_path / "landing" / "Hats" / "c.png", seed=3)
    now = landing.list_files(land)
    assert ingest_small(settings, land, "landing", now, None, most=10) is None
    assert ingest_small(settings, land, "landing", now, before, most=1) is None
    (tmp_path / "landing" / "Hats" / "broken.png").write_bytes(b"not a photo")
    now = landing.list_files(land)
    assert ingest_small(settings, land, "landing", now, before, most=10) is None
    assert table_version(str(settings.catalog_uri)) == 1  # nothing written (1: the seed)


def test_an_item_another_source_owns_or_two_files_of_one_id_go_to_spark(tmp_path):
    settings, land, before = _home(tmp_path, owner="feed")
    write_photo(tmp_path / "landing" / "Hats" / "a.png", seed=9)  # replaces feed's Hats-a
    now = landing.list_files(land)
    assert ingest_small(settings, land, "landing", now, before, most=10) is None
    settings, land, before = _home(tmp_path / "2")
    write_photo(tmp_path / "2" / "landing" / "Hats" / "a.jpg", seed=4)  # Hats-a again
    now = landing.list_files(land)
    assert ingest_small(settings, land, "landing", now, before, most=10) is None
    assert table_version(str(settings.catalog_uri)) == 1


def test_a_new_photo_is_inserted_in_one_commit(tmp_path):
    settings, land, before = _home(tmp_path)
    write_photo(tmp_path / "landing" / "Hats" / "b.png", seed=2)
    done = ingest_small(settings, land, "landing", landing.list_files(land), before, most=10)
    assert done is not None and (done.inserted, done.updated, done.deleted) == (1, 0, 0)
    assert (done.version_before, done.version_after) == (1, 2)
