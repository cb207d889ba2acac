"""Catalogue ingest: staged rows from a source -> diff against the table -> one MERGE commit.

Data flow (nothing proportional to the catalogue is collected on the driver):
1. executors decode and validate the source and write STAGED Parquet under ``staging/<run>``;
2. Spark diffs staged rows against the current snapshot (item_id, content_hash, category)
   and writes only the CHANGES (inserts, updates, deletes) as Parquet;
3. the driver streams the changes, in bounded batches, into one delta-rs MERGE: one atomic
   commit. No changes, no commit, so re-running an ingest is a no-op.
Rejected inputs (with reasons) are appended to the ``catalog_rejects`` table, once per run;
so are rows whose item id another source owns (ownership moves only with ``take_over``).
An unexpected failure (a bug, an unreadable store) is not a reject: the run stops with
``IngestFailed``, one line naming the file and the reason, before anything is committed.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike import storage
from lookalike.catalog import sources
from lookalike.catalog.table import (
    CHANGE_SCHEMA,
    CatalogError,
    append_rejects,
    merge_changes,
    open_table,
    snapshot_files,
    table_version,
)
from lookalike.config import Settings, get_settings
from lookalike.spark import parquet_files, read_parquet, write_parquet

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STALE_STAGING_SECONDS = 24 * 3600


class IngestFailed(CatalogError):
    """An ingest stopped on an unexpected failure (named file and reason); the message says
    whether the catalogue is untouched. The CLI prints it as one line (exit 1)."""


@dataclass
class IngestSummary:
    """What one run did. ``updated`` counts every updated row (Delta's view, as in the change
    feed); ``taken_over`` says how many of those moved from another source to this one.
    ``rejected`` counts invalid inputs and rows whose item id another source owns."""

    source: str
    run_id: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    taken_over: int = 0
    version_before: int | None = None
    version_after: int | None = None
    seconds: float = 0.0
    reject_examples: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (the command's output, a job's summary file)."""
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


def _clean_stale_staging(staging_root: str) -> None:
    """Remove what killed runs left behind (old enough that no live run owns it). Object
    stores have no folder times: a run's folder is as old as its newest file."""
    newest: dict[str, float] = {}
    for e in storage.listdir(staging_root, recursive=True):
        if not e.is_dir and e.mtime is not None:
            run = storage.relative(e.uri, staging_root).split("/")[0]
            newest[run] = max(newest.get(run, 0.0), e.mtime)
    for run, mtime in newest.items():
        if time.time() - mtime > STALE_STAGING_SECONDS:
            storage.remove_tree(storage.join(staging_root, run))


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


def _snapshot(spark: SparkSession, table: str) -> DataFrame:
    """Current catalogue keys and change-relevant columns, read by Spark from the snapshot."""
    files = snapshot_files(open_table(table)) if table_version(table) is not None else []
    if not files:
        return spark.createDataFrame([], SNAPSHOT_DDL)
    return read_parquet(spark, files, SNAPSHOT_DDL)


def take_over_spec(take_over: bool | Iterable[str]) -> tuple[bool, list[str]]:
    """``take_over`` as (take every collision?, listed ids). A bare string is refused: it
    would otherwise be read as a list of one-character ids."""
    if isinstance(take_over, bool):
        return take_over, []
    if isinstance(take_over, str):
        raise TypeError("take_over: give True or an iterable of item ids, not a string")
    return False, sorted(set(take_over))


#: Reject reason of a row whose item id another source owns (a Spark ``format_string``).
OWNED_REASON = "item id owned by source '%s'"


def new_run_id() -> str:
    """An ingest run's id: when it started, and a random suffix (its staging folder, its
    commit's metadata)."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def image_limits(settings: Settings) -> sources.ImageLimits:
    """The settings' limits of a landed photo."""
    return sources.ImageLimits(
        max_side=settings.max_image_side,
        min_side=settings.min_image_side,
        max_pixels=settings.max_image_pixels,
        max_bytes=settings.max_image_bytes,
    )


def count_merge(summary: IngestSummary, metrics: dict[str, Any]) -> None:
    """What Delta says a run's MERGE did, into its summary."""
    summary.inserted = int(metrics.get("num_target_rows_inserted", 0))
    summary.updated = int(metrics.get("num_target_rows_updated", 0))
    summary.deleted = int(metrics.get("num_target_rows_deleted", 0))


def owned_reason(owner: str) -> str:
    """``OWNED_REASON`` for one owner, as Spark writes it (for callers matching reasons)."""
    return OWNED_REASON % owner


def run_ingest(
    spark: SparkSession,
    staged: DataFrame,
    *,
    source: str,
    settings: Settings | None = None,
    delete_missing: bool = False,
    discontinued: Iterable[str] = (),
    take_over: bool | Iterable[str] = False,
    preferred_categories: dict[str, int] | None = None,
) -> IngestSummary:
    """Bring the catalogue in line with ``staged`` (rows of one source) in one Delta commit.

    Which source owns a product never changes by accident (retailers merge feeds): a row
    whose item id another source owns is rejected with the owner's name, and the product is
    left as it was, unless ``take_over`` is True (every such collision of this run) or lists
    the id; taken-over rows are updated in the run's one MERGE. Discontinued ids are deleted
    whoever owns them (an explicit list), and are not collisions.
    """
    from pyspark.sql import functions as F

    settings = settings or get_settings()
    take_all, take_ids = take_over_spec(take_over)
    t0 = time.monotonic()
    run_id = new_run_id()
    table = settings.catalog_uri
    _clean_stale_staging(settings.staging_uri)
    work = storage.join(settings.staging_uri, run_id)
    run = _Run(spark, source, work, IngestSummary(source, run_id), t0)
    summary = run.summary
    try:
        staged = _stage(run, staged)
        summary.version_before = table_version(table)
        snap = _snapshot(spark, table)
        good = staged.where(F.col("reason").isNull())
        gone = spark.createDataFrame([(i,) for i in sorted(set(discontinued))], "item_id string")
        diff = _diff(run, good, snap, gone, (take_all, take_ids), preferred_categories)
        refused = _collisions(run, diff)
        rejects = _rejects(run, staged, refused)
        deletes = snap.join(gone, "item_id", "left_semi").select("item_id")
        if delete_missing:
            missing = snap.where(F.col("source") == source).join(staged, "item_id", "left_anti")
            deletes = deletes.unionByName(missing.select("item_id")).distinct()
        _commit(run, table, _changes(run, diff, deletes))
        summary.version_after = table_version(table)
        untouched = read_parquet(spark, parquet_files(run.at("changes")), "item_id string")
        untouched = untouched.unionByName(refused.select("item_id"))
        summary.unchanged = good.join(untouched, "item_id", "left_anti").count()
        if summary.rejected:
            _keep_rejects(run, rejects, settings.rejects_uri)
    except Exception as e:
        failure = task_failure(e)
        if failure is None:
            raise
        log.debug("ingest run %s failed in a Spark task", run_id, exc_info=True)
        state = "after its commit" if run.committed else "the catalogue is unchanged"
        raise IngestFailed(f"ingest failed in a Spark task: {failure} ({state})") from None
    finally:
        storage.remove_tree(run.work)
    summary.seconds = round(time.monotonic() - t0, 2)
    return summary


def task_failure(e: BaseException) -> str | None:
    """The one line saying why a Spark task failed (the last line of the Python exception a
    worker raised, or Spark's reason for a lost task), or None when ``e`` is no Spark
    failure. The full traces go to the debug log, not to the user."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PythonException

    if isinstance(e, PythonException):
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        return lines[-1] if lines else "an exception in a Python worker"
    if isinstance(e, Py4JJavaError):
        text = str(e)
        lost = re.search(
            r"most recent failure: Lost task [^:]*: (?:[\w.$]+Exception: )?([^\n]*)", text
        )
        if lost:
            return lost.group(1).split(". Consider setting")[0].strip()
        lines = [line.strip(" :") for line in text.splitlines()[1:2]]
        return lines[0] if lines and lines[0] else "a Spark job failed"
    return None


@dataclass
class _Run:
    """One ingest run as its steps see it: where it spills, when it started, what it counted."""

    spark: SparkSession
    source: str
    work: str
    summary: IngestSummary
    t0: float
    committed: bool = False

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    def say(self, msg: str) -> None:
        """A progress line with the seconds since the run started."""
        log.info(f"[{time.monotonic() - self.t0:6.1f}s] {msg}")

    def spill(self, frame: DataFrame, name: str) -> DataFrame:
        """Write ``frame`` under the run's work folder and read it back: later steps reuse
        the result instead of recomputing the plan behind it."""
        write_parquet(frame, self.at(name))
        return read_parquet(self.spark, parquet_files(self.at(name)), frame.schema)

    def at(self, name: str) -> str:
        """The location of one of the run's intermediate results."""
        return storage.join(self.work, name)


def _stage(run: _Run, staged: DataFrame) -> DataFrame:
    """Decode and validate the source on executors (duplicates marked), once, to disk."""
    from pyspark.sql import functions as F

    run.say(f"decoding and validating {run.source} on executors")
    staged = run.spill(_mark_duplicates(staged), "staged")
    counts = {
        (r["ok"], r["failed"]): r["n"]
        for r in staged.groupBy(
            F.col("reason").isNull().alias("ok"), F.col("failure").isNotNull().alias("failed")
        )
        .agg(F.count("*").alias("n"))
        .collect()
    }
    run.summary.rows_read = sum(counts.values())
    failed = sum(n for (_, f), n in counts.items() if f)
    if failed:
        _stop_on_failures(staged, failed)
    invalid = sum(n for (ok, _), n in counts.items() if not ok)
    run.say(f"read {run.summary.rows_read} rows, {invalid} invalid")
    return staged


def _stop_on_failures(staged: DataFrame, failed: int) -> None:
    """Rows an executor could not process for an unexpected reason (``failure``) stop the
    run before anything is written: one line naming the first file and the reason."""
    from pyspark.sql import functions as F

    first = (
        staged.where(F.col("failure").isNotNull())
        .select("path", "failure")
        .orderBy("path")
        .limit(1)
        .collect()[0]
    )
    also = f"; {failed - 1} more file(s) failed too" if failed > 1 else ""
    raise IngestFailed(
        f"ingest failed on {first['path']}: {first['failure']}{also} (the catalogue is unchanged)"
    )


def _diff(
    run: _Run,
    good: DataFrame,
    snap: DataFrame,
    gone: DataFrame,
    take: tuple[bool, list[str]],
    preferred_categories: dict[str, int] | None,
) -> DataFrame:
    """Valid staged rows (not discontinued) beside the table's row of the same item id, with
    category ids assigned, the other source that owns the id (``_owner``) and whether this
    run takes it over (``_take``)."""
    from pyspark.sql import functions as F

    spark = run.spark
    take_all, take_ids = take
    names = [r[0] for r in good.select("category_name").distinct().collect()]
    existing = dict(snap.select("category_name", "category").distinct().collect())
    mapping = assign_categories(existing, names, preferred_categories)
    categories = spark.createDataFrame(list(mapping.items()), "category_name string, category int")
    listed = spark.createDataFrame([(i, True) for i in take_ids], "item_id string, _listed boolean")
    t = snap.select([F.col(c).alias(f"t_{c}") for c in snap.columns])
    # _owner: the other source that owns the row's item id (null: new, or ours already).
    owner = F.when(F.col("t_source") != F.col("source"), F.col("t_source"))
    return (
        good.join(gone, "item_id", "left_anti")
        .join(F.broadcast(categories), "category_name")
        .join(t, F.col("item_id") == F.col("t_item_id"), "left")
        .join(F.broadcast(listed), "item_id", "left")
        .withColumn("_owner", owner)
        .withColumn("_take", owner.isNotNull() & (F.lit(take_all) | F.col("_listed").isNotNull()))
    )


def _collisions(run: _Run, diff: DataFrame) -> DataFrame:
    """Rows whose item id another source owns, to disk first (small columns only): they
    decide the rejects, the take-over count and, with the rejected ids, the unchanged count.
    Returns the refused ones (not taken over)."""
    from pyspark.sql import functions as F

    collisions = run.spill(
        diff.where(F.col("_owner").isNotNull()).select("item_id", "path", "_owner", "_take"),
        "collisions",
    )
    n_coll = dict(collisions.groupBy("_take").count().collect())
    run.summary.taken_over = n_coll.get(True, 0)
    if n_coll:
        run.say(
            f"{sum(n_coll.values())} item ids owned by other sources: "
            f"{run.summary.taken_over} taken over, {n_coll.get(False, 0)} rejected"
        )
    return collisions.where(~F.col("_take"))


def _rejects(run: _Run, staged: DataFrame, refused: DataFrame) -> DataFrame:
    """Invalid inputs and refused collisions, with reasons, as rows of ``catalog_rejects``."""
    from pyspark.sql import functions as F

    rejects = staged.where(F.col("reason").isNotNull()).select("path", "item_id", "reason")
    rejects = rejects.unionByName(
        refused.select("path", "item_id", F.format_string(OWNED_REASON, "_owner").alias("reason"))
    )
    rejects = run.spill(
        rejects.select(
            F.lit(run.run_id).alias("run_id"),
            F.lit(run.source).alias("source"),
            "path",
            "item_id",
            "reason",
            F.current_timestamp().alias("rejected_at"),
        ),
        "rejects",
    )
    run.summary.rejected = rejects.count()
    return rejects


def _changes(run: _Run, diff: DataFrame, deletes: DataFrame) -> int:
    """Write the CHANGES (upserts of new or changed rows this run may write, deletes) under
    the run's work folder; returns how many."""
    from pyspark.sql import functions as F

    changed = (
        F.col("t_item_id").isNull()
        | (F.col("t_content_hash") != F.col("content_hash"))
        | (F.col("t_category_name") != F.col("category_name"))
        | (F.col("t_category") != F.col("category"))
        | (F.col("t_split") != F.col("split"))
        | (F.col("t_source") != F.col("source"))
    )
    upserts = diff.where(changed & (F.col("_owner").isNull() | F.col("_take")))
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
    return run.spill(changes, "changes").count()


def _commit(run: _Run, table: str, n_changes: int) -> None:
    """The run's one MERGE (no changes: no commit); counts what Delta says it did."""
    summary = run.summary
    if not n_changes:
        run.say("no changes: nothing to commit")
        return
    run.say(f"committing {n_changes} changes in one MERGE")
    metadata = {"lookalike.run_id": run.run_id, "lookalike.source": run.source}
    if summary.taken_over:
        metadata["lookalike.taken_over"] = str(summary.taken_over)
    run.committed = True  # from here on, a failure may come after the commit
    count_merge(summary, merge_changes(table, run.at("changes"), commit_metadata=metadata))


def _keep_rejects(run: _Run, rejects: DataFrame, rejects_uri: str) -> None:
    """Ten examples in the summary; all of them appended to ``catalog_rejects``."""
    run.summary.reject_examples = [
        {"path": r["path"] or "", "item_id": r["item_id"] or "", "reason": r["reason"]}
        for r in rejects.select("path", "item_id", "reason").orderBy("path").limit(10).collect()
    ]
    append_rejects(rejects_uri, run.at("rejects"), run.run_id)


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
    take_over: bool | Iterable[str] = False,
) -> IngestSummary:
    """Ingest the Fashion-MNIST catalogue (``limit`` images per split) as source
    ``fashion-mnist``, its label order as category ids; arguments as in ``run_ingest``."""
    settings = settings or get_settings()
    staged = sources.fashion_mnist_frame(spark, settings.fashion_mnist_dir, limit)
    return run_ingest(
        spark,
        staged,
        source=sources.FASHION_MNIST_SOURCE,
        settings=settings,
        delete_missing=delete_missing,
        discontinued=discontinued,
        take_over=take_over,
        preferred_categories={n: i for i, n in enumerate(sources.FASHION_MNIST_LABELS)},
    )


def ingest_folder(
    spark: SparkSession,
    root: str | Path,
    *,
    settings: Settings | None = None,
    metadata_csv: str | Path | None = None,
    source: str | None = None,
    delete_missing: bool = False,
    discontinued: Iterable[str] = (),
    take_over: bool | Iterable[str] = False,
    id_prefix: str = "",
) -> IngestSummary:
    """Ingest a folder of photos as ``source`` (default ``folder:<name>``). ``id_prefix``
    goes in front of every item id of the feed, CSV ids included (see
    ``sources.folder_frame``); ``take_over`` as in ``run_ingest``."""
    settings = settings or get_settings()
    root = storage.normalise(root)
    source = source or f"folder:{storage.name(root)}"
    try:
        staged = _folder_staged(spark, root, source, settings, metadata_csv, id_prefix)
    except sources.SourceError as e:
        raise IngestFailed(f"{e} (the catalogue is unchanged)") from None
    return run_ingest(
        spark,
        staged,
        source=source,
        settings=settings,
        delete_missing=delete_missing,
        discontinued=discontinued,
        take_over=take_over,
    )


def _folder_staged(
    spark: SparkSession,
    root: str,
    source: str,
    settings: Settings,
    metadata_csv: str | Path | None,
    id_prefix: str,
) -> DataFrame:
    """The folder's staged rows, with the settings' image limits and link policy."""
    return sources.folder_frame(
        spark,
        root,
        source=source,
        limits=image_limits(settings),
        test_fraction=settings.test_fraction,
        metadata_csv=metadata_csv,
        id_prefix=id_prefix,
        follow_links_out=settings.ingest_follow_links_out,
    )
