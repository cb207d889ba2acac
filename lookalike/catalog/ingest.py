"""Catalogue ingest: staged rows from a source -> diff against the table -> one MERGE commit.

Data flow (nothing proportional to the catalogue is collected on the driver):
1. executors decode and validate the source and write STAGED Parquet under ``staging/<run>``;
2. Spark diffs staged rows against the current snapshot (item_id, content_hash, category)
   and writes only the CHANGES (inserts, updates, deletes) as Parquet;
3. the driver streams the changes, in bounded batches, into one delta-rs MERGE: one atomic
   commit. No changes, no commit, so re-running an ingest is a no-op.
Rejected inputs (with reasons) are appended to the ``catalog_rejects`` table, once per run.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.catalog import sources
from lookalike.catalog.table import (
    CHANGE_SCHEMA,
    append_rejects,
    merge_changes,
    open_table,
    snapshot_files,
    table_version,
)
from lookalike.config import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STALE_STAGING_SECONDS = 24 * 3600


@dataclass
class IngestSummary:
    source: str
    run_id: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    version_before: int | None = None
    version_after: int | None = None
    seconds: float = 0.0
    reject_examples: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assign_categories(
    existing: dict[str, int], names: Iterable[str], preferred: dict[str, int] | None = None
) -> dict[str, int]:
    """Stable category ids: existing names keep theirs; new names get their preferred id
    (e.g. the Fashion-MNIST label) when free, else the next free id."""
    preferred = preferred or {}
    mapping = dict(existing)
    used = set(existing.values())
    new = sorted(set(names) - set(existing), key=lambda n: (n not in preferred, n))
    for name in new:
        want = preferred.get(name)
        if want is None or want in used:
            want = max(used, default=-1) + 1
        mapping[name] = want
        used.add(want)
    return mapping


def _log(msg: str, t0: float) -> None:
    print(f"[ingest {time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _clean_stale_staging(staging_root: Path) -> None:
    """Remove what killed runs left behind (old enough that no live run owns it)."""
    if not staging_root.is_dir():
        return
    for d in staging_root.iterdir():
        if d.is_dir() and time.time() - d.stat().st_mtime > STALE_STAGING_SECONDS:
            shutil.rmtree(d, ignore_errors=True)


def _mark_duplicates(staged: DataFrame) -> DataFrame:
    """Two inputs claiming one item_id are ambiguous: reject both rather than pick one."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    dup = F.count("*").over(Window.partitionBy("item_id"))
    return staged.withColumn(
        "reason",
        F.when(
            F.col("reason").isNull() & F.col("item_id").isNotNull() & (dup > 1),
            F.concat(F.lit("duplicate item_id in input ("), dup.cast("string"), F.lit(" files)")),
        ).otherwise(F.col("reason")),
    )


SNAPSHOT_DDL = (
    "item_id string, content_hash string, category_name string, category int, "
    "split string, source string"
)


def _snapshot(spark: SparkSession, table: Path) -> DataFrame:
    """Current catalogue keys and change-relevant columns, read by Spark from the snapshot."""
    files = snapshot_files(open_table(table)) if table_version(table) is not None else []
    if not files:
        return spark.createDataFrame([], SNAPSHOT_DDL)
    return spark.read.parquet(*files).selectExpr(*[c.split()[0] for c in SNAPSHOT_DDL.split(", ")])


def run_ingest(
    spark: SparkSession,
    staged: DataFrame,
    *,
    source: str,
    settings: Settings | None = None,
    delete_missing: bool = False,
    discontinued: Iterable[str] = (),
    preferred_categories: dict[str, int] | None = None,
    log: Callable[[str, float], None] = _log,
) -> IngestSummary:
    """Bring the catalogue in line with ``staged`` (rows of one source) in one Delta commit."""
    from pyspark.sql import functions as F

    settings = settings or get_settings()
    t0 = time.monotonic()
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    summary = IngestSummary(source=source, run_id=run_id)
    table = settings.catalog_path
    _clean_stale_staging(settings.staging_dir)
    work = settings.staging_dir / run_id
    try:
        log(f"decoding and validating {source} on executors", t0)
        _mark_duplicates(staged).write.mode("error").parquet(str(work / "staged"))
        staged = spark.read.parquet(str(work / "staged"))
        counts = {
            r["ok"]: r["n"]
            for r in staged.groupBy((F.col("reason").isNull()).alias("ok"))
            .agg(F.count("*").alias("n"))
            .collect()
        }
        summary.rows_read = sum(counts.values())
        summary.rejected = counts.get(False, 0)
        log(f"read {summary.rows_read} rows, {summary.rejected} rejected", t0)

        summary.version_before = table_version(table)
        snap = _snapshot(spark, table)
        good = staged.where(F.col("reason").isNull())
        names = [r[0] for r in good.select("category_name").distinct().collect()]
        existing = dict(snap.select("category_name", "category").distinct().collect())
        mapping = assign_categories(existing, names, preferred_categories)
        categories = spark.createDataFrame(
            list(mapping.items()), "category_name string, category int"
        )
        t = snap.select([F.col(c).alias(f"t_{c}") for c in snap.columns])
        changed = (
            F.col("t_item_id").isNull()
            | (F.col("t_content_hash") != F.col("content_hash"))
            | (F.col("t_category_name") != F.col("category_name"))
            | (F.col("t_category") != F.col("category"))
            | (F.col("t_split") != F.col("split"))
            | (F.col("t_source") != F.col("source"))
        )
        upserts = (
            good.join(F.broadcast(categories), "category_name")
            .join(t, F.col("item_id") == F.col("t_item_id"), "left")
            .where(changed)
        )
        gone = spark.createDataFrame([(i,) for i in sorted(set(discontinued))], "item_id string")
        upserts = upserts.join(gone, "item_id", "left_anti")
        deletes = snap.join(gone, "item_id", "left_semi").select("item_id")
        if delete_missing:
            missing = snap.where(F.col("source") == source).join(staged, "item_id", "left_anti")
            deletes = deletes.unionByName(missing.select("item_id")).distinct()
        placeholders = {
            f.name: F.lit(None).cast(_spark_type(f.type))
            for f in CHANGE_SCHEMA
            if f.name not in ("item_id", "_op")
        }
        changes = upserts.select(
            *[c for c in CHANGE_SCHEMA.names if c != "_op"], F.lit("upsert").alias("_op")
        ).unionByName(
            deletes.select(
                "item_id",
                *[v.alias(k) for k, v in placeholders.items()],
                F.lit("delete").alias("_op"),
            )
        )
        changes.write.mode("error").parquet(str(work / "changes"))
        n_changes = spark.read.parquet(str(work / "changes")).count()

        if n_changes:
            log(f"committing {n_changes} changes in one MERGE", t0)
            metrics = merge_changes(
                table,
                work / "changes",
                commit_metadata={"lookalike.run_id": run_id, "lookalike.source": source},
            )
            summary.inserted = int(metrics.get("num_target_rows_inserted", 0))
            summary.updated = int(metrics.get("num_target_rows_updated", 0))
            summary.deleted = int(metrics.get("num_target_rows_deleted", 0))
        else:
            log("no changes: nothing to commit", t0)
        summary.version_after = table_version(table)
        changed_ids = spark.read.parquet(str(work / "changes")).select("item_id")
        summary.unchanged = good.join(changed_ids, "item_id", "left_anti").count()

        if summary.rejected:
            rejects = staged.where(F.col("reason").isNotNull())
            summary.reject_examples = [
                {"path": r["path"] or "", "item_id": r["item_id"] or "", "reason": r["reason"]}
                for r in rejects.select("path", "item_id", "reason")
                .orderBy("path")
                .limit(10)
                .collect()
            ]
            rejects.select(
                F.lit(run_id).alias("run_id"),
                F.lit(source).alias("source"),
                "path",
                "item_id",
                "reason",
                F.current_timestamp().alias("rejected_at"),
            ).write.mode("error").parquet(str(work / "rejects"))
            append_rejects(settings.rejects_path, work / "rejects", run_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.seconds = round(time.monotonic() - t0, 2)
    return summary


def _spark_type(arrow_type: Any) -> str:
    import pyarrow as pa

    return {pa.string(): "string", pa.binary(): "binary", pa.int32(): "int"}[arrow_type]


def ingest_fashion_mnist(
    spark: SparkSession,
    *,
    settings: Settings | None = None,
    limit: int | None = None,
    delete_missing: bool = False,
    discontinued: Iterable[str] = (),
) -> IngestSummary:
    settings = settings or get_settings()
    staged = sources.fashion_mnist_frame(spark, settings.fashion_mnist_dir, limit)
    return run_ingest(
        spark,
        staged,
        source=sources.FASHION_MNIST_SOURCE,
        settings=settings,
        delete_missing=delete_missing,
        discontinued=discontinued,
        preferred_categories={n: i for i, n in enumerate(sources.FASHION_MNIST_LABELS)},
    )


def ingest_folder(
    spark: SparkSession,
    root: Path,
    *,
    settings: Settings | None = None,
    metadata_csv: Path | None = None,
    source: str | None = None,
    delete_missing: bool = False,
    discontinued: Iterable[str] = (),
) -> IngestSummary:
    settings = settings or get_settings()
    root = Path(root).resolve()
    source = source or f"folder:{root.name}"
    staged = sources.folder_frame(
        spark,
        root,
        source=source,
        limits=sources.ImageLimits(
            max_side=settings.max_image_side,
            min_side=settings.min_image_side,
            max_pixels=settings.max_image_pixels,
            max_bytes=settings.max_image_bytes,
        ),
        test_fraction=settings.test_fraction,
        metadata_csv=metadata_csv,
    )
    return run_ingest(
        spark,
        staged,
        source=source,
        settings=settings,
        delete_missing=delete_missing,
        discontinued=discontinued,
    )
