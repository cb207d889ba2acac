"""The ``embeddings`` Delta table: one row per (encoder name, encoder version, item).

``embed_catalog`` (Spark) embeds the catalogue with one encoder version on executors, the model
loaded once per Python worker, and only for items whose image changed since that version last
embedded them (``content_hash``), so a rerun costs a diff and commits nothing.
``embed_changed`` is the same pass on the driver for a few changes (a landed photo: seconds,
no Spark pass). Incremental re-indexing stages its own rows (driver-side) and uses the same
one-commit ``merge_embeddings``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties
from deltalake.exceptions import CommitFailedError

from lookalike import storage
from lookalike.catalog.table import (
    TS,
    conflict,
    delta_table,
    ensure_table,
    is_table,
    open_table,
    resolve_version,
    snapshot_files,
    staged_dataset,
)
from lookalike.config import Settings
from lookalike.faults import crash_point
from lookalike.registry.encoders import EncoderRef, embed_images, load_predict, model_dir
from lookalike.spark import parquet_files, read_parquet, write_parquet
from lookalike.training.progress import pass_progress

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

EMBEDDINGS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("encoder_name", pa.string(), nullable=False),
        pa.field("encoder_version", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
        pa.field("catalog_version", pa.int64(), nullable=False),
        pa.field("embedded_at", TS, nullable=False),
    ]
)

#: Staged MERGE source: delete rows carry only the key columns.
STAGED_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("encoder_name", pa.string(), nullable=False),
        pa.field("encoder_version", pa.string(), nullable=False),
        pa.field("content_hash", pa.string()),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("catalog_version", pa.int64()),
        pa.field("_op", pa.string(), nullable=False),
    ]
)

EMBED_OUT_DDL = "item_id string, content_hash string, embedding array<float>"


@dataclass
class EmbedSummary:
    """What ``embed_catalog`` did: rows embedded, deleted and kept, and the table version after."""

    encoder: str
    catalog_version: int
    embedded: int = 0
    deleted: int = 0
    unchanged: int = 0
    table_version: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (the command's output, a job's summary file)."""
        return asdict(self)


def embed_batch(batch: pa.RecordBatch, encoder: EncoderRef) -> pa.RecordBatch:
    """Executor side: ``item_id, content_hash, image`` -> ``item_id, content_hash, embedding``."""
    out_schema = pa.schema(
        [
            ("item_id", pa.string()),
            ("content_hash", pa.string()),
            ("embedding", pa.list_(pa.float32())),
        ]
    )
    if batch.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=out_schema)
    vectors = embed_images(
        load_predict(model_dir(encoder)),
        batch.column("image").to_pylist(),
        input_size=encoder.input_size,
        channels=encoder.channels,
    )
    flat = pa.array(vectors.reshape(-1), pa.float32())
    offsets = pa.array(np.arange(0, vectors.size + 1, vectors.shape[1], dtype=np.int32))
    return pa.RecordBatch.from_arrays(
        [
            batch.column("item_id").cast(pa.string()),
            batch.column("content_hash").cast(pa.string()),
            pa.ListArray.from_arrays(offsets, flat),
        ],
        schema=out_schema,
    )


def staged_rows(
    encoder: EncoderRef,
    catalog_version: int,
    *,
    upserts: tuple[list[str], list[str], np.ndarray] | None = None,
    deletes: Sequence[str] = (),
) -> pa.Table:
    """MERGE source rows built on the driver: (ids, content hashes, vectors) and deleted ids."""
    ids, hashes, vectors = upserts or ([], [], np.zeros((0, encoder.embedding_size), np.float32))
    n, m = len(ids), len(deletes)
    d = encoder.embedding_size
    flat = pa.array(np.asarray(vectors, np.float32).reshape(-1), pa.float32())
    emb = pa.ListArray.from_arrays(pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)), flat)
    up = pa.table(
        {
            "item_id": pa.array(ids, pa.string()),
            "encoder_name": pa.array([encoder.name] * n, pa.string()),
            "encoder_version": pa.array([encoder.version] * n, pa.string()),
            "content_hash": pa.array(hashes, pa.string()),
            "embedding": emb,
            "catalog_version": pa.array([catalog_version] * n, pa.int64()),
            "_op": pa.array(["upsert"] * n, pa.string()),
        },
        schema=STAGED_SCHEMA,
    )
    gone = pa.table(
        {
            "item_id": pa.array(list(deletes), pa.string()),
            "encoder_name": pa.array([encoder.name] * m, pa.string()),
            "encoder_version": pa.array([encoder.version] * m, pa.string()),
            "content_hash": pa.nulls(m, pa.string()),
            "embedding": pa.nulls(m, pa.list_(pa.float32())),
            "catalog_version": pa.nulls(m, pa.int64()),
            "_op": pa.array(["delete"] * m, pa.string()),
        },
        schema=STAGED_SCHEMA,
    )
    return pa.concat_tables([up, gone])


def merge_embeddings(
    uri: str, staged: str | Path | pa.Table, *, commit_metadata: dict[str, str]
) -> dict[str, Any]:
    """Apply staged rows (STAGED_SCHEMA, Parquet folder or table) in ONE commit; none if
    no-op."""
    dt = ensure_table(uri, EMBEDDINGS_SCHEMA)
    now = datetime.now(UTC)
    out_schema = STAGED_SCHEMA.append(pa.field("run_at", TS, nullable=False))
    if isinstance(staged, pa.Table):
        staged = _drop_missing_deletes(dt, staged)
        source: Iterator[pa.RecordBatch] = iter(staged.to_batches(max_chunksize=2048))
    else:
        source = staged_dataset(str(staged)).to_batches(batch_size=2048)

    def batches() -> Iterator[pa.RecordBatch]:
        for b in source:
            cols = [b.column(f.name).cast(f.type) for f in STAGED_SCHEMA]
            cols.append(pa.array([now] * b.num_rows, TS))
            yield pa.RecordBatch.from_arrays(cols, schema=out_schema)
        crash_point("embeddings.merge_source_read")  # delta-rs is writing, nothing committed

    reader = pa.RecordBatchReader.from_batches(out_schema, batches())
    key = (
        "t.item_id = s.item_id AND t.encoder_name = s.encoder_name "
        "AND t.encoder_version = s.encoder_version"
    )
    values = {
        "content_hash": "s.content_hash",
        "embedding": "s.embedding",
        "catalog_version": "s.catalog_version",
        "embedded_at": "s.run_at",
    }
    merge = (
        dt.merge(
            reader,
            predicate=key,
            source_alias="s",
            target_alias="t",
            streamed_exec=True,
            commit_properties=CommitProperties(custom_metadata=commit_metadata),
        )
        .when_matched_delete(predicate="s._op = 'delete'")
        .when_matched_update(
            updates=values, predicate="s._op = 'upsert' AND t.content_hash <> s.content_hash"
        )
        .when_not_matched_insert(
            updates={
                "item_id": "s.item_id",
                "encoder_name": "s.encoder_name",
                "encoder_version": "s.encoder_version",
            }
            | values,
            predicate="s._op = 'upsert'",
        )
    )
    try:
        return merge.execute()
    except CommitFailedError as e:
        raise conflict(str(uri), e) from e


def _drop_missing_deletes(dt: Any, staged: pa.Table) -> pa.Table:
    """Staged deletes of rows the table does not hold are nothing to do, and delta-rs 1.6
    fails a MERGE that holds one beside an insert ("rows failed validation check"): an
    incremental re-index after the fresh ingest already deleted those rows does exactly
    that. Reads the key columns only."""
    ops = staged.column("_op").to_pylist()
    if "delete" not in ops:
        return staged
    keys = pa.table(
        dt.to_pyarrow_dataset().to_table(columns=["item_id", "encoder_name", "encoder_version"])
    )
    held = set(
        zip(*(keys.column(c).cast(pa.string()).to_pylist() for c in keys.column_names), strict=True)
    )
    rows = zip(
        *(staged.column(c).to_pylist() for c in ("item_id", "encoder_name", "encoder_version")),
        strict=True,
    )
    keep = [op != "delete" or key in held for op, key in zip(ops, rows, strict=True)]
    return staged.filter(pa.array(keep))


def read_embeddings(
    uri: str, encoder_name: str, encoder_version: str, version: int | None = None
) -> tuple[list[str], np.ndarray, list[str]]:
    """(item ids sorted, float32 vectors, content hashes) of one encoder version."""
    if not is_table(uri):
        return [], np.zeros((0, 0), np.float32), []
    dataset = delta_table(uri, version).to_pyarrow_dataset()
    parts = []
    cols = ["item_id", "encoder_name", "encoder_version", "content_hash", "embedding"]
    for b in dataset.to_batches(columns=cols):
        # delta-rs writes string_view: cast before comparing (no dataset filter pushdown)
        mask = pc.and_(
            pc.equal(b.column(1).cast(pa.string()), encoder_name),
            pc.equal(b.column(2).cast(pa.string()), encoder_version),
        )
        kept = pa.Table.from_batches([b]).filter(mask)
        if kept.num_rows:
            parts.append(
                pa.table(
                    {
                        "item_id": kept.column(0).cast(pa.string()),
                        "content_hash": kept.column(3).cast(pa.string()),
                        "embedding": kept.column(4).cast(pa.list_(pa.float32())),
                    }
                )
            )
    if not parts:
        return [], np.zeros((0, 0), np.float32), []
    table = pa.concat_tables(parts).sort_by("item_id")
    emb = table.column("embedding").combine_chunks()
    d = len(emb[0]) if len(emb) else 0
    vectors = np.asarray(emb.flatten(), dtype=np.float32).reshape(-1, d)
    return table.column("item_id").to_pylist(), vectors, table.column("content_hash").to_pylist()


def embed_catalog(
    spark: SparkSession,
    settings: Settings,
    encoder: EncoderRef,
    catalog_version: int | None = None,
) -> EmbedSummary:
    """Bring the encoder's rows of ``embeddings`` in line with the catalogue at a version."""
    t0 = time.monotonic()
    catalog_uri, embeddings_uri = str(settings.catalog_uri), str(settings.embeddings_uri)
    version = resolve_version(catalog_uri, catalog_version)
    summary = EmbedSummary(encoder=f"{encoder.name}/{encoder.version}", catalog_version=version)
    run_id = f"embed-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    work = storage.join(settings.staging_uri, run_id)
    try:
        catalog = read_parquet(
            spark,
            snapshot_files(open_table(catalog_uri, version)),
            "item_id string, content_hash string, image binary",
        )
        existing = _existing_rows(spark, embeddings_uri, encoder)
        changes = _changes(spark, catalog, existing, encoder, version)
        with pass_progress(spark, f"embedding with {summary.encoder}"):
            write_parquet(changes, storage.join(work, "staged"))
        staged = read_parquet(spark, parquet_files(storage.join(work, "staged")), changes.schema)
        counts = dict(staged.groupBy("_op").count().collect())
        summary.embedded = int(counts.get("upsert", 0))
        summary.deleted = int(counts.get("delete", 0))
        summary.unchanged = existing.count() - summary.deleted
        log.info(_pass_line(summary, time.monotonic() - t0))
        if summary.embedded or summary.deleted:
            merge_embeddings(
                embeddings_uri,
                storage.join(work, "staged"),
                commit_metadata={
                    "lookalike.run_id": run_id,
                    "lookalike.encoder": summary.encoder,
                    "lookalike.catalog_version": str(version),
                },
            )
        summary.table_version = delta_table(embeddings_uri).version()
    finally:
        storage.remove_tree(work)
    summary.seconds = round(time.monotonic() - t0, 2)
    return summary


def embed_changed(
    settings: Settings, encoder: EncoderRef, *, most: int, catalog_version: int | None = None
) -> EmbedSummary | None:
    """``embed_catalog``'s pass on the driver, for a few changes: no Spark job, so a landed
    photo's update costs seconds. The keys (item id, content hash) of the catalogue and of
    the encoder's rows are compared; images are read only from the catalogue files holding
    a changed item (new photos land in new files). None, having written nothing, when more
    than ``most`` items changed: that is the executors' work."""
    t0 = time.monotonic()
    catalog_uri, embeddings_uri = str(settings.catalog_uri), str(settings.embeddings_uri)
    version = resolve_version(catalog_uri, catalog_version)
    fragments = list(open_table(catalog_uri, version).to_pyarrow_dataset().get_fragments())
    current = _keys(fragments)
    ensure_table(embeddings_uri, EMBEDDINGS_SCHEMA)
    held = dict(zip(*read_keys(embeddings_uri, encoder), strict=True))
    todo = {i for i, h in current.items() if held.get(i) != h}
    gone = sorted(held.keys() - current.keys())
    if len(todo) + len(gone) > most:
        return None
    summary = EmbedSummary(
        encoder=f"{encoder.name}/{encoder.version}",
        catalog_version=version,
        embedded=len(todo),
        deleted=len(gone),
        unchanged=len(held) - len(gone),
    )
    if todo or gone:
        changed = _rows_of(fragments, todo)
        vectors = embed_images(
            load_predict(model_dir(encoder)),
            changed.column("image").to_pylist(),
            input_size=encoder.input_size,
            channels=encoder.channels,
        ).reshape(changed.num_rows, encoder.embedding_size)
        upserts = (
            changed.column("item_id").to_pylist(),
            changed.column("content_hash").to_pylist(),
            vectors,
        )
        merge_embeddings(
            embeddings_uri,
            staged_rows(encoder, version, upserts=upserts, deletes=gone),
            commit_metadata={
                "lookalike.encoder": summary.encoder,
                "lookalike.catalog_version": str(version),
            },
        )
    log.info(_pass_line(summary, time.monotonic() - t0))
    summary.table_version = delta_table(embeddings_uri).version()
    summary.seconds = round(time.monotonic() - t0, 2)
    return summary


def read_keys(uri: str, encoder: EncoderRef) -> tuple[list[str], list[str]]:
    """(item ids, content hashes) of one encoder version's rows: no vectors read."""
    ids: list[str] = []
    hashes: list[str] = []
    cols = ["item_id", "encoder_name", "encoder_version", "content_hash"]
    for b in delta_table(uri).to_pyarrow_dataset().to_batches(columns=cols):
        mask = pc.and_(
            pc.equal(b.column(1).cast(pa.string()), encoder.name),
            pc.equal(b.column(2).cast(pa.string()), encoder.version),
        )
        kept = pa.Table.from_batches([b]).filter(mask)
        ids += kept.column(0).cast(pa.string()).to_pylist()
        hashes += kept.column(3).cast(pa.string()).to_pylist()
    return ids, hashes


def _keys(fragments: list[Any]) -> dict[str, str]:
    """item id -> content hash over a table version's files (key columns only)."""
    keys: dict[str, str] = {}
    for f in fragments:
        t = f.to_table(columns=["item_id", "content_hash"])
        ids = t.column(0).cast(pa.string()).to_pylist()
        keys.update(zip(ids, t.column(1).cast(pa.string()).to_pylist(), strict=True))
    return keys


def _rows_of(fragments: list[Any], wanted: set[str]) -> pa.Table:
    """``item_id, content_hash, image`` of the wanted items, reading images only from the
    files that hold one (cast from the string and binary views delta-rs files read as: pyarrow
    filters no view column)."""
    schema = pa.schema(
        [("item_id", pa.string()), ("content_hash", pa.string()), ("image", pa.binary())]
    )
    value_set = pa.array(sorted(wanted), pa.string())
    parts = []
    for f in fragments:
        mask = pc.is_in(f.to_table(columns=["item_id"]).column(0).cast(pa.string()), value_set)
        if pc.any(mask).as_py():
            t = f.to_table(columns=schema.names)
            cols = [t.column(c.name).cast(c.type) for c in schema]
            parts.append(pa.Table.from_arrays(cols, schema=schema).filter(mask))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _pass_line(summary: EmbedSummary, elapsed: float) -> str:
    """The line an embedding pass ends with: what it did, its rate, what is left."""
    rate = summary.embedded / elapsed if elapsed > 0 else 0.0
    return (
        f"embedding pass with {summary.encoder} on catalogue v{summary.catalog_version}: "
        f"{summary.embedded} embedded ({rate:.1f} items/s), {summary.deleted} deleted, "
        f"{summary.unchanged} unchanged; {elapsed:.0f} s elapsed, left: one Delta commit"
    )


def _existing_rows(spark: SparkSession, uri: str, encoder: EncoderRef) -> DataFrame:
    """(item_id, content_hash) of the encoder version's rows in ``embeddings`` (the table is
    created when missing)."""
    from pyspark.sql import functions as F

    ensure_table(uri, EMBEDDINGS_SCHEMA)
    files = snapshot_files(open_table(uri))
    columns = "item_id string, content_hash string, encoder_name string, encoder_version string"
    return (
        read_parquet(spark, files, columns)
        .where(
            (F.col("encoder_name") == encoder.name) & (F.col("encoder_version") == encoder.version)
        )
        .select("item_id", "content_hash")
    )


def _changes(
    spark: SparkSession,
    catalog: DataFrame,
    existing: DataFrame,
    encoder: EncoderRef,
    version: int,
) -> DataFrame:
    """Staged rows (STAGED_SCHEMA): upserts for catalogue items whose current image the
    encoder has not embedded (embedded on executors), deletes for rows of items gone."""
    from pyspark.sql import functions as F

    todo = catalog.join(existing, ["item_id", "content_hash"], "left_anti")
    parallelism = max(2, spark.sparkContext.defaultParallelism * 2)
    enc = encoder

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield embed_batch(b, enc)

    upserts = (
        todo.repartition(parallelism)
        .mapInArrow(run, EMBED_OUT_DDL)
        .select(
            "item_id",
            F.lit(encoder.name).alias("encoder_name"),
            F.lit(encoder.version).alias("encoder_version"),
            "content_hash",
            "embedding",
            F.lit(version).cast("long").alias("catalog_version"),
            F.lit("upsert").alias("_op"),
        )
    )
    deletes = existing.join(catalog, "item_id", "left_anti").select(
        "item_id",
        F.lit(encoder.name).alias("encoder_name"),
        F.lit(encoder.version).alias("encoder_version"),
        F.lit(None).cast("string").alias("content_hash"),
        F.lit(None).cast("array<float>").alias("embedding"),
        F.lit(None).cast("long").alias("catalog_version"),
        F.lit("delete").alias("_op"),
    )
    return upserts.unionByName(deletes)
