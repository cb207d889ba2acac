"""The catalogue's one-commit MERGE and the rejects log, on real delta-rs tables."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lookalike.catalog.table import (
    CHANGE_SCHEMA,
    REJECTS_SCHEMA,
    append_rejects,
    catalog_stats,
    merge_changes,
    table_version,
)
from tests.support.tables import change


def stage(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    d = tmp_path / name
    d.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=CHANGE_SCHEMA), d / "part-0.parquet")
    return d


def cdf(table: Path, version: int) -> list[tuple[str, str]]:
    feed = pa.table(
        DeltaTable(str(table)).load_cdf(starting_version=version, ending_version=version)
    )
    return sorted(zip(feed["item_id"].to_pylist(), feed["_change_type"].to_pylist(), strict=True))


def test_merge_inserts_updates_deletes_in_one_commit_each(tmp_path):
    table = tmp_path / "catalog"
    m = merge_changes(
        table, stage(tmp_path, "a", [change("a"), change("b"), change("c")]), commit_metadata={}
    )
    assert m["num_target_rows_inserted"] == 3 and table_version(table) == 1

    rows = [change("a"), change("b", h="h2"), change("c", op="delete"), change("d")]
    merge_changes(table, stage(tmp_path, "b", rows), commit_metadata={"lookalike.run_id": "r2"})
    assert table_version(table) == 2
    assert cdf(table, 2) == [
        ("b", "update_postimage"),
        ("b", "update_preimage"),
        ("c", "delete"),
        ("d", "insert"),
    ]
    assert DeltaTable(str(table)).history(1)[0]["lookalike.run_id"] == "r2"
    stats = catalog_stats(table)
    assert stats["rows"] == 3 and stats["version"] == 2


def test_unchanged_rows_make_no_commit(tmp_path):
    table = tmp_path / "catalog"
    merge_changes(table, stage(tmp_path, "a", [change("a"), change("b")]), commit_metadata={})
    merge_changes(table, stage(tmp_path, "b", [change("a"), change("b")]), commit_metadata={})
    assert table_version(table) == 1


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_small_change_set_skips_files_its_ids_cannot_be_in(tmp_path, monkeypatch, in_memory):
    """A refresh must not read the whole catalogue from the store: held in memory, the
    change set lets delta-rs prune target files by item_id min/max. Streamed (a change set
    above the limit) it reads them all, with the same result."""
    import lookalike.catalog.table as table_module

    if not in_memory:
        monkeypatch.setattr(table_module, "IN_MEMORY_MERGE_BYTES", 0)
    table = tmp_path / "catalog"
    merge_changes(table, stage(tmp_path, "a", [change("a1"), change("a2")]), commit_metadata={})
    merge_changes(table, stage(tmp_path, "b", [change("z1"), change("z2")]), commit_metadata={})
    m = merge_changes(table, stage(tmp_path, "c", [change("z1", h="new")]), commit_metadata={})
    assert m["num_target_rows_updated"] == 1
    assert (m["num_target_files_scanned"] == 1) is in_memory
    rows = DeltaTable(str(table)).to_pyarrow_table().sort_by("item_id").to_pylist()
    assert [(r["item_id"], r["content_hash"]) for r in rows] == [
        ("a1", "h1"),
        ("a2", "h1"),
        ("z1", "new"),
        ("z2", "h1"),
    ]


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_failing_source_leaves_the_table_as_it_was(tmp_path, monkeypatch, in_memory):
    import lookalike.catalog.table as table_module

    if not in_memory:
        monkeypatch.setattr(table_module, "IN_MEMORY_MERGE_BYTES", 0)
    table = tmp_path / "catalog"
    merge_changes(table, stage(tmp_path, "a", [change("a")]), commit_metadata={})
    broken = stage(tmp_path, "b", [change("b"), change("a", h="new")])
    (broken / "part-1.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(Exception):  # noqa: B017 - any failure will do; the table must not move
        merge_changes(table, broken, commit_metadata={})
    assert table_version(table) == 1
    assert DeltaTable(str(table)).to_pyarrow_table()["content_hash"].to_pylist() == ["h1"]


def test_rejects_are_appended_once_per_run(tmp_path):
    d = tmp_path / "rejects"
    d.mkdir()
    row = {"run_id": "r1", "source": "s", "path": "/x.png", "item_id": None, "reason": "empty file"}
    pq.write_table(
        pa.Table.from_pylist([row | {"rejected_at": None}], schema=REJECTS_SCHEMA).set_column(
            5, "rejected_at", pa.array([0], pa.timestamp("us", tz="UTC"))
        ),
        d / "part-0.parquet",
    )
    table = tmp_path / "catalog_rejects"
    assert append_rejects(table, d, "r1") == 1
    assert append_rejects(table, d, "r1") == 0
    assert DeltaTable(str(table)).to_pyarrow_table().num_rows == 1
