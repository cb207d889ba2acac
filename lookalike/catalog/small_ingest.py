"""A few landed photos ingested in seconds: the Spark ingest's diff, on the driver, for the
files of the landing store that changed since the last ingest.

The fresh path runs every time photos land. A Spark ingest of the landing store costs ~40 s
whatever the change (a JVM, then decoding, diffing and spilling the whole folder); a few
new, replaced or removed photos need none of that. Here the files whose size or modification
time differ from the last ingested listing are decoded (``folder_batch``, as the executors
do), compared with the catalogue rows of their item ids, and committed in one MERGE: the
same rows the Spark ingest would write. Anything out of the ordinary is the Spark ingest's
to handle, with its rejects table and ownership rules: this returns None, having written
nothing, when there is no ingested listing to compare with, more than ``most`` files
changed, a changed file is a link, two files claim one item id, a photo is refused, or
another source owns an item.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lookalike import storage
from lookalike.catalog.ingest import (
    IngestSummary,
    assign_categories,
    count_merge,
    image_limits,
    new_run_id,
)
from lookalike.catalog.landing import Files
from lookalike.catalog.sources import folder_batch, folder_item_id
from lookalike.catalog.table import (
    CHANGE_SCHEMA,
    is_table,
    merge_changes,
    open_table,
    table_version,
)
from lookalike.config import Settings

log = logging.getLogger(__name__)

#: The catalogue columns a diff compares (as the Spark ingest's snapshot).
KEY_COLUMNS = ("item_id", "content_hash", "category_name", "category", "split", "source")


def changed_files(now: Files, before: Files) -> tuple[list[str], list[str]]:
    """(files added or replaced, files removed) between two listings, sorted."""
    changed = sorted(rel for rel, v in now.items() if before.get(rel) != v)
    return changed, sorted(before.keys() - now.keys())


def ingest_small(
    settings: Settings,
    root: str,
    source: str,
    now: Files,
    before: Files | None,
    most: int,
) -> IngestSummary | None:
    """Bring the catalogue in line with the landing store ``root`` (listed as ``now``; last
    ingested as ``before``) for the files that changed: one MERGE commit, none when nothing
    changed. None, having written nothing, when the Spark ingest should run instead."""
    t0 = time.monotonic()
    if before is None or not is_table(str(settings.catalog_uri)):
        return None
    changed, removed = changed_files(now, before)
    if len(changed) + len(removed) > most or _unusual(root, now, changed):
        return None
    summary = IngestSummary(source, new_run_id())
    staged = _decode(settings, root, source, changed)
    if staged is None:
        return None
    summary.rows_read = staged.num_rows
    present = {folder_item_id(rel) for rel in now}
    gone = {folder_item_id(rel) for rel in removed} - present
    ids = staged["item_id"].to_pylist()
    rows, categories = _catalogue_rows(str(settings.catalog_uri), set(ids) | gone)
    if any(rows[i]["source"] != source for i in ids if i in rows):
        return None  # another source owns one: the Spark ingest rejects it with the owner
    changes = _changes(staged, rows, categories, gone, source)
    summary.version_before = table_version(str(settings.catalog_uri))
    summary.unchanged = len(now) - sum(1 for op in changes["_op"].to_pylist() if op == "upsert")
    if changes.num_rows:
        _commit(settings, summary, changes)
    summary.version_after = table_version(str(settings.catalog_uri))
    summary.seconds = round(time.monotonic() - t0, 2)
    log.info(
        "landing on the driver: %d changed, %d removed files -> %d inserted, %d updated, "
        "%d deleted in %.1f s",
        len(changed),
        len(removed),
        summary.inserted,
        summary.updated,
        summary.deleted,
        summary.seconds,
    )
    return summary


def _unusual(root: str, now: Files, changed: list[str]) -> bool:
    """True when the Spark ingest must look: a changed file reached through a link (links
    have rules of their own), or an item id claimed by two files."""
    if storage.is_local(root):
        base = storage.normalise(root)
        for rel in changed:
            path = os.path.join(base, rel)
            if os.path.realpath(path) != os.path.abspath(path):
                return True
    ids = Counter(folder_item_id(rel) for rel in now)
    return any(ids[folder_item_id(rel)] > 1 for rel in changed)


def _decode(settings: Settings, root: str, source: str, changed: list[str]) -> pa.Table | None:
    """The changed files decoded and validated as the executors do; None when any is
    refused or failed (rejects are the Spark ingest's)."""
    root = storage.normalise(root)
    paths = [storage.join(root, rel) for rel in changed]
    plan = pa.record_batch(
        {
            "path": pa.array(paths, pa.string()),
            **{
                c: pa.nulls(len(paths), pa.string())
                for c in ("item_id", "category_name", "split", "reason", "failure")
            },
        }
    )
    staged = pa.Table.from_batches(
        [
            folder_batch(
                plan,
                root=root,
                source=source,
                limits=image_limits(settings),
                test_fraction=settings.test_fraction,
            )
        ]
    )
    if staged.num_rows and (
        pc.any(pc.is_valid(staged["reason"])).as_py()
        or pc.any(pc.is_valid(staged["failure"])).as_py()
    ):
        return None
    return staged


def _catalogue_rows(uri: str, ids: set[str]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """(the catalogue's key columns of ``ids`` by item id, category ids by name). Cast from
    the string views delta-rs files read as: pyarrow filters no view column."""
    wanted = pa.array(sorted(ids), pa.string())
    rows: dict[str, dict[str, Any]] = {}
    categories: dict[str, int] = {}
    for b in open_table(uri).to_pyarrow_dataset().to_batches(columns=list(KEY_COLUMNS)):
        t = pa.Table.from_arrays(
            [b.column(c).cast(pa.int32() if c == "category" else pa.string()) for c in KEY_COLUMNS],
            names=list(KEY_COLUMNS),
        )
        names = t["category_name"].to_pylist()
        categories.update(zip(names, t["category"].to_pylist(), strict=True))
        for row in t.filter(pc.is_in(t["item_id"], wanted)).to_pylist():
            rows[row["item_id"]] = row
    return rows, categories


def _changes(
    staged: pa.Table,
    rows: dict[str, dict[str, Any]],
    categories: dict[str, int],
    gone: set[str],
    source: str,
) -> pa.Table:
    """Upserts (new or changed rows) and deletes (removed files' items this source owns) as
    a MERGE source of ``CHANGE_SCHEMA``, as the Spark ingest writes them."""
    mapping = assign_categories(categories, staged["category_name"].to_pylist())
    out: list[dict[str, Any]] = []
    for row in staged.to_pylist():
        row["category"] = mapping[row["category_name"]]
        old = rows.get(row["item_id"])
        if old is None or any(old[c] != row[c] for c in KEY_COLUMNS[1:]):
            out.append({c: row[c] for c in CHANGE_SCHEMA.names if c != "_op"} | {"_op": "upsert"})
    for item in sorted(gone):
        if item in rows and rows[item]["source"] == source:
            out.append({"item_id": item, "_op": "delete"})
    return pa.Table.from_pylist(out, schema=CHANGE_SCHEMA)


def _commit(settings: Settings, summary: IngestSummary, changes: pa.Table) -> None:
    """One MERGE of ``changes`` (written to the staging area first: ``merge_changes`` reads
    a change set from the store), then the staging files removed."""
    import pyarrow.parquet as pq

    work = storage.join(str(settings.staging_uri), summary.run_id)
    fs, path = storage.filesystem(storage.join(work, "changes", "part-0.parquet"))
    try:
        storage.ensure_dir(storage.join(work, "changes"))
        pq.write_table(changes, path, filesystem=fs)
        metrics = merge_changes(
            str(settings.catalog_uri),
            storage.join(work, "changes"),
            commit_metadata={
                "lookalike.run_id": summary.run_id,
                "lookalike.source": summary.source,
            },
        )
    finally:
        storage.remove_tree(work)
    count_merge(summary, metrics)
