"""The benchmarks' catalogue preamble: the quality benches measure on the catalogue as the
Fashion-MNIST ingest wrote it, even after later commits to the same table."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from bench.catalog import standard_version


def _commit(uri: str, rows: int, source: str, mode: str = "append") -> None:
    write_deltalake(
        uri,
        pa.table({"item_id": [f"i{n}" for n in range(rows)]}),
        mode=mode,
        commit_properties=CommitProperties(custom_metadata={"lookalike.source": source}),
    )


def test_the_ingest_version_is_found_behind_later_commits(tmp_path):
    uri = str(tmp_path / "catalog")
    _commit(uri, 3, "fashion-mnist")  # version 0
    _commit(uri, 1, "bench")  # bench/index.py's simulated edits
    _commit(uri, 2, "folder")  # a retailer's photos
    dt = DeltaTable(uri)
    assert dt.version() == 2
    assert standard_version(dt.history()) == 0
    assert len(DeltaTable(uri, version=0).to_pyarrow_table()) == 3  # what the benches read


def test_no_ingest_no_version(tmp_path):
    uri = str(tmp_path / "catalog")
    _commit(uri, 1, "folder")
    assert standard_version(DeltaTable(uri).history()) is None


@pytest.mark.parametrize("history", [[], [{"version": 4, "operation": "MERGE"}]])
def test_untagged_history_has_no_standard_version(history):
    assert standard_version(history) is None
