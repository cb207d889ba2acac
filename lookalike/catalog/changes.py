"""Changes of the catalogue since a Delta version, from the table's change data feed.

An index built at catalogue version ``V`` (its watermark) is brought up to date by applying
``catalog_changes(path, V)``: the NET effect of every commit after ``V`` per item, so an item
inserted then updated is one insert, and an item inserted then deleted is nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lookalike.catalog.table import open_table

# Order of change rows inside one commit: a pre-image comes before its post-image.
_RANK = {"update_preimage": 0, "delete": 1, "insert": 1, "update_postimage": 2}
_BEFORE = {"update_preimage", "update_postimage", "delete"}  # first change implies it existed


@dataclass(frozen=True)
class CatalogChanges:
    """Net catalogue changes between two Delta versions: what an incremental re-index applies."""

    since_version: int
    until_version: int
    inserts: pa.Table  # post-image rows of items that did not exist at since_version
    updates: pa.Table  # post-image rows of items that existed and still exist
    deletes: list[str]  # item ids that existed at since_version and are gone

    @property
    def empty(self) -> bool:
        """True when nothing changed: the re-index can stop without writing a version."""
        return not (self.inserts.num_rows or self.updates.num_rows or self.deletes)

    def summary(self) -> dict[str, int]:
        """Counts and versions, for logs, summaries and manifests (no row data)."""
        return {
            "since_version": self.since_version,
            "until_version": self.until_version,
            "inserts": self.inserts.num_rows,
            "updates": self.updates.num_rows,
            "deletes": len(self.deletes),
        }


def _net(
    ids: list[str], types: list[str], order: list[int]
) -> tuple[list[int], list[int], list[str]]:
    """Net effect per item of the feed's rows in commit ``order``: (rows of items that are
    new, rows of items that existed before and still exist (their last state), ids of items
    that existed before and are gone). An item added and removed in between is no change."""
    first: dict[str, str] = {}
    last: dict[str, tuple[str, int]] = {}
    for i in order:
        first.setdefault(ids[i], types[i])
        if types[i] != "update_preimage":
            last[ids[i]] = (types[i], i)

    insert_rows, update_rows, deletes = [], [], []
    for item_id, (kind, row) in last.items():
        existed, exists = first[item_id] in _BEFORE, kind != "delete"
        if existed and exists:
            update_rows.append(row)
        elif exists:
            insert_rows.append(row)
        elif existed:
            deletes.append(item_id)
    return insert_rows, update_rows, deletes


def catalog_changes(
    path: Path, since_version: int, columns: list[str] | None = None
) -> CatalogChanges:
    """Net changes committed AFTER ``since_version`` (exclusive) up to the current version.

    ``columns`` limits the row data returned (``item_id`` is always included); pass e.g.
    ``["item_id", "image", "category"]`` to avoid reading what the caller does not need.
    """
    dt = open_table(path)
    until = dt.version()
    if since_version < -1:
        raise ValueError(f"since_version must be >= -1, got {since_version}")
    schema = pa.schema([f for f in pa.schema(dt.schema()) if columns is None or f.name in columns])
    if "item_id" not in schema.names:
        schema = pa.schema([pa.field("item_id", pa.string()), *schema])
    empty = schema.empty_table()
    if since_version >= until:
        return CatalogChanges(since_version, until, empty, empty, [])

    wanted = [*schema.names, "_change_type", "_commit_version"]
    feed_schema = schema.append(pa.field("_change_type", pa.string())).append(
        pa.field("_commit_version", pa.int64())
    )
    # delta-rs hands out string_view columns, which Arrow cannot `take` from: cast first.
    feed = pa.table(dt.load_cdf(starting_version=since_version + 1, columns=wanted))
    feed = feed.select(wanted).cast(feed_schema)
    ids = feed.column("item_id").to_pylist()
    types = feed.column("_change_type").to_pylist()
    versions = feed.column("_commit_version").to_pylist()
    order = sorted(range(len(ids)), key=lambda i: (versions[i], _RANK[types[i]]))

    insert_rows, update_rows, deletes = _net(ids, types, order)

    def take(rows: list[int]) -> pa.Table:
        return feed.take(pa.array(sorted(rows), pa.int64())).select(schema.names)

    return CatalogChanges(
        since_version=since_version,
        until_version=until,
        inserts=take(insert_rows),
        updates=take(update_rows),
        deletes=sorted(deletes),
    )
