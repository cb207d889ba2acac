"""The ``catalog`` Delta table (delta-rs): schema, one-commit MERGE, snapshot and stats.

All writes go through ``merge_changes``: one MERGE = one atomic Delta commit, so a job that
dies before it leaves the table as it was, and a MERGE that changes nothing commits nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError

from lookalike import storage
from lookalike.faults import crash_point

CDF_CONFIG = {"delta.enableChangeDataFeed": "true"}
#: Small row groups, so that one product photo is read with at most a few hundred others
#: (``catalog.photos``: the service reads photos on demand instead of holding them all).
WRITER_PROPERTIES = WriterProperties(max_row_group_size=256)
TS = pa.timestamp("us", tz="UTC")
#: Change sets up to this size (staged Parquet bytes) are merged from memory; see
#: ``merge_changes``. A refresh's changes are far below it; a bootstrap may be above.
IN_MEMORY_MERGE_BYTES = 256 << 20

CATALOG_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("category", pa.int32(), nullable=False),
        pa.field("category_name", pa.string(), nullable=False),
        pa.field("image", pa.binary(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("channels", pa.int32(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("ingested_at", TS, nullable=False),
        pa.field("updated_at", TS, nullable=False),
    ]
)

#: What a MERGE source carries: the catalogue columns minus timestamps, plus the operation.
#: Nullable, because delete rows carry only ``item_id``; the table's schema guards what lands.
CHANGE_SCHEMA = pa.schema(
    [
        f.with_nullable(f.name != "item_id")
        for f in CATALOG_SCHEMA
        if f.name not in ("ingested_at", "updated_at")
    ]
    + [pa.field("_op", pa.string(), nullable=False)]
)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("path", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("rejected_at", TS, nullable=False),
    ]
)


class CatalogError(RuntimeError):
    """The catalogue table is missing or in a state this code cannot read safely."""


class WriteConflict(CatalogError):
    """Another writer committed to the table while this one ran: nothing of this run was
    committed, and rerunning it is safe (every job here is idempotent)."""


def is_table(uri: str) -> bool:
    """True when a Delta table is at the location (local path or object-store URI)."""
    return DeltaTable.is_deltatable(uri, storage_options=storage.delta_options(uri))


def delta_table(uri: str, version: int | None = None) -> DeltaTable:
    """The Delta table at a location, with the location's storage options."""
    return DeltaTable(uri, version=version, storage_options=storage.delta_options(uri))


def ensure_table(uri: str, schema: pa.Schema) -> DeltaTable:
    """Open the table, creating it empty (change data feed on) if absent. Safe to repeat."""
    if is_table(uri):
        return delta_table(uri)
    storage.ensure_dir(uri)
    return DeltaTable.create(
        uri,
        schema,
        mode="ignore",
        configuration=CDF_CONFIG,
        storage_options=storage.delta_options(uri),
    )


def table_version(uri: str) -> int | None:
    """Current version, or None when there is no table yet."""
    return delta_table(uri).version() if is_table(uri) else None


def resolve_version(uri: str, version: int | None = None) -> int:
    """``version`` if given, else the current version (a clear error when there is no table)."""
    return open_table(uri).version() if version is None else version


def open_table(uri: str, version: int | None = None) -> DeltaTable:
    """The Delta table at ``uri`` (at ``version``); a missing table is a ``CatalogError`` that
    says to ingest first."""
    if not is_table(uri):
        raise CatalogError(f"no catalogue table at {uri}: run `lookalike ingest ...` first")
    return delta_table(uri, version)


def staged_dataset(uri: str) -> pads.Dataset:
    """Parquet files a job staged under ``uri`` (local or object store), for streaming."""
    fs, path = storage.filesystem(uri)
    return pads.dataset(path, filesystem=fs, format=storage.parquet_format())


def conflict(uri: str, error: Exception) -> WriteConflict:
    """The error a lost commit race becomes: which table, and that a rerun is safe."""
    return WriteConflict(
        f"{uri}: another writer committed to this table while this run was writing, so "
        f"nothing was committed; rerun when it has finished ({error})"
    )


def snapshot_files(dt: DeltaTable) -> list[str]:
    """Parquet files of the current snapshot, for readers (Spark) that do not speak Delta.

    Correct only without deletion vectors or column mapping, which delta-rs does not write;
    refuse rather than return wrong rows if some other writer turned them on.
    """
    protocol = dt.protocol()
    unsafe = {"deletionVectors", "columnMapping"} & set(protocol.reader_features or [])
    if unsafe:
        raise CatalogError(f"{dt.table_uri}: reader features {sorted(unsafe)} are not supported")
    return list(dt.file_uris())


def _run_columns(batch: pa.RecordBatch, now: datetime) -> pa.RecordBatch:
    """Conform a staged batch to CHANGE_SCHEMA and stamp it with the run's time."""
    cols = [batch.column(f.name).cast(f.type) for f in CHANGE_SCHEMA]
    stamp = pa.array([now] * batch.num_rows, TS)
    return pa.RecordBatch.from_arrays(
        [*cols, stamp], schema=CHANGE_SCHEMA.append(pa.field("run_at", TS, nullable=False))
    )


def changes_bytes(changes_uri: str) -> int:
    """Bytes of the staged change files (their Parquet size on the store)."""
    return sum(e.size for e in storage.listdir(changes_uri) if e.uri.endswith(".parquet"))


def merge_changes(
    uri: str,
    changes_uri: str,
    *,
    commit_metadata: dict[str, str],
    batch_rows: int = 2048,
) -> dict[str, Any]:
    """Apply staged changes (Parquet rows of CHANGE_SCHEMA) to the catalogue in ONE commit.

    ``_op='upsert'`` rows insert new items or update items whose image or category changed;
    ``_op='delete'`` rows delete. A source above ``IN_MEMORY_MERGE_BYTES`` is streamed from
    the store in ``batch_rows`` batches, so driver memory does not grow with the catalogue.
    Returns delta-rs merge metrics.
    """
    dt = ensure_table(uri, CATALOG_SCHEMA)
    now = datetime.now(UTC)
    source = staged_dataset(changes_uri)
    # Small change sets are held in memory so that delta-rs prunes the catalogue's files by
    # their item_id min/max before the join (a streamed source disables that): a refresh
    # then reads only the files its ids can be in, not the whole table from the store.
    streamed = changes_bytes(changes_uri) > IN_MEMORY_MERGE_BYTES
    out_schema = CHANGE_SCHEMA.append(pa.field("run_at", TS, nullable=False))

    def batches() -> Iterator[pa.RecordBatch]:
        for b in source.to_batches(batch_size=batch_rows):
            yield _run_columns(b, now)

    crash_point("catalog.merge_starting")
    if streamed:
        data: pa.RecordBatchReader | pa.Table = pa.RecordBatchReader.from_batches(
            out_schema, batches()
        )
    else:  # read here, so a broken source raises in Python before delta-rs starts
        data = pa.Table.from_batches(list(batches()), out_schema)
    data_cols = [f.name for f in CHANGE_SCHEMA if f.name != "_op"]
    update = {c: f"s.{c}" for c in data_cols if c != "item_id"} | {"updated_at": "s.run_at"}
    insert = {c: f"s.{c}" for c in data_cols} | {
        "ingested_at": "s.run_at",
        "updated_at": "s.run_at",
    }
    changed = (
        "t.content_hash <> s.content_hash OR t.category_name <> s.category_name "
        "OR t.category <> s.category OR t.split <> s.split OR t.source <> s.source"
    )
    try:
        return (
            dt.merge(
                data,
                predicate="t.item_id = s.item_id",
                source_alias="s",
                target_alias="t",
                streamed_exec=streamed,
                writer_properties=WRITER_PROPERTIES,
                commit_properties=CommitProperties(custom_metadata=commit_metadata),
            )
            .when_matched_delete(predicate="s._op = 'delete'")
            .when_matched_update(updates=update, predicate=f"s._op = 'upsert' AND ({changed})")
            .when_not_matched_insert(updates=insert, predicate="s._op = 'upsert'")
            .execute()
        )
    except CommitFailedError as e:
        raise conflict(uri, e) from e


def append_rejects(uri: str, rejects_uri: str, run_id: str) -> int:
    """Append a run's rejected inputs to the rejects table, once per run id (idempotent)."""
    from deltalake import Transaction

    dt = ensure_table(uri, REJECTS_SCHEMA)
    if dt.transaction_version(run_id) is not None:
        return 0
    source = staged_dataset(rejects_uri)
    n = source.count_rows()
    if n == 0:
        return 0
    reader = pa.RecordBatchReader.from_batches(
        REJECTS_SCHEMA,
        (
            pa.RecordBatch.from_arrays(
                [b.column(f.name).cast(f.type) for f in REJECTS_SCHEMA], schema=REJECTS_SCHEMA
            )
            for b in source.to_batches(batch_size=4096)
        ),
    )
    write_deltalake(
        uri,
        reader,
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction(run_id, 1)]),
        storage_options=storage.delta_options(uri),
    )
    return n


def catalog_stats(uri: str) -> dict[str, Any]:
    """Delta version, row count, counts per category (and split), split and source."""
    dt = open_table(uri)
    # the log before the scan: delta-rs's history() after a pyarrow dataset scan aborts the
    # process at exit about one time in ten ("terminate called without an active exception")
    last = dt.history(1)[0] if dt.version() > 0 else {}
    per_category: Counter[tuple[int, str, str]] = Counter()
    per_source: Counter[str] = Counter()
    for b in dt.to_pyarrow_dataset().to_batches(
        columns=["category", "category_name", "split", "source"]
    ):
        cats, names, splits, sources = (b.column(i).to_pylist() for i in range(4))
        per_category.update(zip(cats, names, splits, strict=True))
        per_source.update(sources)
    categories: dict[tuple[int, str], dict[str, Any]] = {}
    per_split: Counter[str] = Counter()
    for (cat, name, split), n in sorted(per_category.items()):
        entry = categories.setdefault(
            (cat, name), {"category": cat, "category_name": name, "rows": 0}
        )
        entry["rows"] += n
        entry[split] = n
        per_split[split] += n
    return {
        "table": str(uri),
        "version": dt.version(),
        "rows": sum(per_split.values()),
        "splits": dict(sorted(per_split.items())),
        "sources": dict(sorted(per_source.items())),
        "categories": list(categories.values()),
        "last_commit": {
            "operation": last.get("operation"),
            "at": datetime.fromtimestamp(last["timestamp"] / 1000, UTC).isoformat(
                timespec="seconds"
            )
            if "timestamp" in last
            else None,
        },
    }
