"""Net change feed since a watermark version: what a re-index must apply."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lookalike.catalog.changes import catalog_changes
from lookalike.catalog.table import CHANGE_SCHEMA, CatalogError, merge_changes, table_version
from tests.support.tables import change


class Catalog:
    """A catalogue table that tests change one MERGE commit at a time."""

    def __init__(self, root: Path) -> None:
        self.root, self.path, self.commits = root, root / "catalog", 0

    def commit(self, *rows: dict) -> int:
        self.commits += 1
        d = self.root / f"stage-{self.commits}"
        d.mkdir()
        pq.write_table(pa.Table.from_pylist(list(rows), schema=CHANGE_SCHEMA), d / "p.parquet")
        merge_changes(self.path, d, commit_metadata={})
        return table_version(self.path)


@pytest.fixture
def table(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path)


def test_inserts_updates_and_deletes_since_a_version(table):
    v1 = table.commit(change("a"), change("b"), change("c"))
    table.commit(change("b", h="h2"), change("c", op="delete"), change("d"))
    ch = catalog_changes(table.path, v1)
    assert ch.inserts["item_id"].to_pylist() == ["d"]
    assert ch.updates["item_id"].to_pylist() == ["b"]
    assert ch.updates["content_hash"].to_pylist() == ["h2"]  # the post-image
    assert ch.deletes == ["c"]
    assert ch.summary() == {
        "since_version": 1,
        "until_version": 2,
        "inserts": 1,
        "updates": 1,
        "deletes": 1,
    }


def test_net_effect_over_several_commits(table):
    v1 = table.commit(change("a"), change("b"))
    table.commit(change("n"), change("a", h="h2"))  # n new, a updated
    table.commit(change("n", h="h3"), change("a", op="delete"), change("b", op="delete"))
    table.commit(change("b", h="back"), change("x"))  # b re-inserted, x new
    table.commit(change("x", op="delete"))  # x gone again
    ch = catalog_changes(table.path, v1, columns=["item_id", "content_hash"])
    assert ch.inserts.to_pylist() == [{"item_id": "n", "content_hash": "h3"}]
    assert ch.updates.to_pylist() == [{"item_id": "b", "content_hash": "back"}]
    assert ch.deletes == ["a"]
    assert ch.inserts.schema.names == ["item_id", "content_hash"]


def test_since_current_version_is_empty_and_since_minus_one_is_everything(table):
    v = table.commit(change("a"), change("b"))
    assert catalog_changes(table.path, v).empty
    everything = catalog_changes(table.path, -1)
    assert sorted(everything.inserts["item_id"].to_pylist()) == ["a", "b"]


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogError, match="no catalogue table"):
        catalog_changes(tmp_path / "nope", 0)
