"""Index versions: a full build for one encoder version, and incremental updates from the
catalogue's change data feed.

Rules kept here, in one place:
- one index version = one encoder version (an update with another encoder is refused; a new
  encoder means a full build);
- a version is published on disk only after its recall@10 against exact search passed
  (ann-benchmarks' recall: near-ties at the 10th place count, ``Settings.recall_tolerance``;
  strict recall is recorded beside it);
- an update with no net catalogue changes writes no version;
- ``embeddings`` rows are committed (one MERGE) before the index version that uses them, so a
  failed run leaves no index pointing at vectors that were never recorded;
- one writer at a time: builds and updates hold the index writers' lease
  (``lookalike.locks``), so two refreshes, or a refresh and a promotion, are serialised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lookalike import locks
from lookalike.catalog.changes import CatalogChanges, catalog_changes
from lookalike.catalog.table import open_table, resolve_version
from lookalike.config import Settings
from lookalike.faults import crash_point
from lookalike.index import scann_index as sx
from lookalike.index import versions
from lookalike.registry.encoders import EncoderRef, embed_images, load_predict
from lookalike.similarity.embeddings import embed_catalog, merge_embeddings, read_embeddings
from lookalike.similarity.embeddings import staged_rows as embedding_rows
from lookalike.similarity.feed import latest_version

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Rebalance when the partitions' imbalance (ScaNN's average relative positive imbalance)
#: grew this much above what it was right after the last build or rebalance. Relative, not
#: absolute: k-means on clustered photos is uneven from the start (0.6-1.0 measured on 3,000
#: Fashion-MNIST items), and a rebalance cannot make it more even than that.
MAX_IMBALANCE_GROWTH = 0.5
#: The baseline of manifests written before the baseline was recorded (threshold 1.0 as then).
LEGACY_BALANCED_IMBALANCE = 0.5
IMBALANCE_STAT = "partition_avg_relative_positive_imbalance"

ITEM_COLUMNS = ["item_id", "category", "category_name", "content_hash"]
ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("category", pa.int32(), nullable=False),
        pa.field("category_name", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
    ]
)


class IndexBuildError(RuntimeError):
    """An index cannot be built or updated as asked; the message says why."""


class EncoderMismatch(IndexBuildError):
    """An update would mix two encoder versions in one index."""


@dataclass
class IndexResult:
    """What a build or update did (``kind`` none: nothing to do), for the command's output,
    the DAG and the benchmarks."""

    kind: str  # full | update | none
    index_version: str | None
    path: str | None
    base_index_version: str | None = None
    catalog_version: int | None = None
    size: int = 0
    recall_at_10: float | None = None  # with ties (the gating number)
    recall_at_10_strict: float | None = None
    changes: dict[str, int] = field(default_factory=dict)
    rebalanced: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the command's output, a job's summary file)."""
        return asdict(self)


log = logging.getLogger(__name__)


# ----------------------------------------------------------------- building blocks


def catalog_items(settings: Settings, version: int) -> pa.Table:
    """Item metadata (no images) of the catalogue at ``version``, sorted by item id."""
    dataset = open_table(settings.catalog_uri, version).to_pyarrow_dataset()
    parts = [
        pa.Table.from_batches([b]).cast(ITEMS_SCHEMA)
        for b in dataset.to_batches(columns=ITEM_COLUMNS)
        if b.num_rows
    ]
    table = pa.concat_tables(parts) if parts else ITEMS_SCHEMA.empty_table()
    return table.sort_by("item_id")


def check_recall(
    settings: Settings,
    searcher: Any,
    vectors: np.ndarray,
    ids: list[str],
    *,
    params: dict[str, Any] | None = None,
) -> tuple[sx.RecallResult, sx.SearchTuning]:
    """The publish gate: tune the query-time settings within the build's ``params``
    (cheapest reaching ``settings.index_target_recall``), then recall@10 with ties there
    (``settings.recall_tolerance``) must reach ``settings.index_min_recall``, else
    RecallTooLow. Returns (recall, tuning)."""
    want = max(settings.index_target_recall, settings.index_min_recall)
    tuning, recall = sx.tune(
        searcher, vectors, ids, params or {}, want=want, tolerance=settings.recall_tolerance
    )
    at = f" ({tuning})" if tuning.leaves_to_search else ""
    if recall.with_ties < settings.index_min_recall:
        raise sx.RecallTooLow(
            f"{recall.describe()}{at} < {settings.index_min_recall} (not published)"
        )
    log.info(f"{recall.describe()}{at} >= {settings.index_min_recall}")
    return recall, tuning


def publish_searcher(
    settings: Settings,
    searcher: Any,
    vectors: np.ndarray,
    items: pa.Table,
    manifest: dict[str, Any],
) -> tuple[str, Path, dict[str, Any]]:
    """Recall check, then publish ``searcher`` as the next version (files first, manifest
    last); returns (name, path, full manifest). Public so a prebuilt searcher (the 1M
    serving benchmark) goes through the same gate and layout as a pipeline build."""
    ids = items.column("item_id").to_pylist()
    recall, tuning = check_recall(settings, searcher, vectors, ids, params=manifest.get("params"))

    def write(folder: Path, name: str) -> dict[str, Any]:
        return sx.write_version(
            folder,
            searcher,
            manifest
            | {
                "index_version": name,
                "dimension": int(vectors.shape[1]),
                "recall_at_10": round(recall.with_ties, 4),
                "recall_at_10_strict": round(recall.strict, 4),
                "recall_tolerance": recall.tolerance,
                "search": asdict(tuning) if tuning.leaves_to_search else None,
                "built_at": datetime.now(UTC).isoformat(),
            },
            vectors=vectors,
            items=items,
        )

    return versions.publish(settings, write)


def encoder_manifest(encoder: EncoderRef) -> dict[str, Any]:
    """The encoder as an index version's manifest records it (its ``"encoder"`` entry):
    name, version and the input and output shapes the version was built for. For a
    manifest written outside ``build_full`` (a benchmark's synthetic index version)."""
    return {
        "name": encoder.name,
        "version": encoder.version,
        "input_size": encoder.input_size,
        "channels": encoder.channels,
        "embedding_size": encoder.embedding_size,
    }


# ----------------------------------------------------------------- full build


def build_full(
    settings: Settings,
    encoder: EncoderRef,
    *,
    spark: SparkSession | None = None,
    catalog_version: int | None = None,
) -> IndexResult:
    """Embed the catalogue (Spark, only what is missing) and build a new index version,
    holding the index writers' lease."""
    purpose = f"full index build ({encoder.name}/{encoder.version})"
    with locks.writer_lease(settings, locks.INDEXES, purpose):
        return _build_full(settings, encoder, spark, catalog_version)


def _build_full(
    settings: Settings,
    encoder: EncoderRef,
    spark: SparkSession | None,
    catalog_version: int | None,
) -> IndexResult:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    version = resolve_version(settings.catalog_uri, catalog_version)
    if spark is not None:
        log.info(f"embedding catalogue v{version} with {encoder.name}/{encoder.version} (Spark)")
        summary = embed_catalog(spark, settings, encoder, version)
        log.info(
            f"embedded {summary.embedded}, deleted {summary.deleted}, kept {summary.unchanged}"
        )
    timings["embed"] = round(time.monotonic() - t0, 2)
    with _timed(timings, "read"):
        items = catalog_items(settings, version)
        if items.num_rows == 0:
            raise IndexBuildError(f"catalogue version {version} has no items to index")
        # no other embeddings writer commits while the lease is held: the service follows
        # the change feed from this version (serving/tail.py)
        embeddings_version = latest_version(settings.embeddings_uri)
        vectors = _current_vectors(settings, encoder, items, version)
    with _timed(timings, "build"):
        params = sx.IndexParams.for_size(*vectors.shape)
        log.info(f"building ScaNN over {len(vectors)} vectors ({params})")
        searcher = sx.build_searcher(vectors, items.column("item_id").to_pylist(), params)
    with _timed(timings, "check_and_write"):
        name, path, manifest = publish_searcher(
            settings,
            searcher,
            vectors,
            items,
            {
                "kind": "full",
                "encoder": encoder_manifest(encoder),
                "catalog_version": version,
                "embeddings_version": embeddings_version,
                "params": asdict(params),
                "base_index_version": None,
                "changed_since_rebalance": 0,
                "balanced_imbalance": _imbalance(_health(searcher)),
            },
        )
    log.info(f"published {name}: {manifest['size']} items, {_recall_text(manifest)}")
    return IndexResult(
        kind="full",
        index_version=name,
        path=str(path),
        catalog_version=version,
        size=manifest["size"],
        recall_at_10=manifest["recall_at_10"],
        recall_at_10_strict=manifest["recall_at_10_strict"],
        seconds=round(time.monotonic() - t0, 2),
        timings=timings,
    )


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Record the seconds the block took as ``timings[step]`` (not when it raises)."""
    t = time.monotonic()
    yield
    timings[step] = round(time.monotonic() - t, 2)


def _current_vectors(
    settings: Settings, encoder: EncoderRef, items: pa.Table, version: int
) -> np.ndarray:
    """The encoder's recorded vectors of ``items``, in their order; every item must have one
    of its current content (else the catalogue was not embedded: IndexBuildError)."""
    ids, vectors, hashes = read_embeddings(settings.embeddings_uri, encoder.name, encoder.version)
    have = dict(zip(ids, hashes, strict=True))
    want = items.column("content_hash").to_pylist()
    stale = [
        i
        for i, h in zip(items.column("item_id").to_pylist(), want, strict=True)
        if have.get(i) != h
    ]
    if stale:
        raise IndexBuildError(
            f"{len(stale)} items of catalogue v{version} have no current embedding from "
            f"{encoder.name}/{encoder.version} (e.g. {stale[0]}): run `lookalike embed` first"
        )
    row = {item_id: j for j, item_id in enumerate(ids)}
    return vectors[[row[i] for i in items.column("item_id").to_pylist()]]


# ----------------------------------------------------------------- incremental update


def update_index(
    settings: Settings,
    *,
    base: Path | str | None = None,
    encoder: EncoderRef | None = None,
) -> IndexResult:
    """Apply the catalogue's net changes since ``base``'s watermark; a new version, or none.

    ``base`` is a version folder, or resolved under the lease: ``"served"`` (the served
    bundle's index: what the refresh follows), ``"latest"`` (the default) or a version name.
    ``encoder`` defaults to the base's own encoder version (fetched from the registry); a
    different version is refused: a new encoder needs a full build. Holds the index
    writers' lease, so the base (default: the latest version) is read after any other
    build or update has published.
    """
    with locks.writer_lease(settings, locks.INDEXES, "incremental index update"):
        return _update_index(settings, base, encoder)


def _update_index(
    settings: Settings, base: Path | str | None, encoder: EncoderRef | None
) -> IndexResult:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        old, encoder = _load_base(settings, base, encoder)
    watermark = int(old.manifest["catalog_version"])
    with _timed(timings, "changes"):
        changes = catalog_changes(settings.catalog_uri, watermark, columns=[*ITEM_COLUMNS, "image"])
    result = IndexResult(
        kind="none",
        index_version=None,
        path=None,
        base_index_version=old.path.name,
        catalog_version=changes.until_version,
        changes=changes.summary(),
    )
    if changes.empty:
        log.info(f"no catalogue changes since v{watermark}: {old.path.name} stays current")
        result.size = int(old.manifest["size"])
        result.seconds = round(time.monotonic() - t0, 2)
        return result

    with _timed(timings, "embed"):
        changed = pa.concat_tables([changes.inserts, changes.updates])
        new_vectors = _embed_rows(encoder, changed)
    with _timed(timings, "record_embeddings"):
        _record_embeddings(settings, encoder, changes, changed, new_vectors, old.path.name)
        embeddings_version = latest_version(settings.embeddings_uri)  # under the lease
    crash_point("embeddings.committed")
    with _timed(timings, "apply"):
        all_items, all_vectors, deleted = _apply_changes(old, changes.deletes, changed, new_vectors)
        since, health, balanced, result.rebalanced = _rebalance_if_due(
            settings, old, changed.num_rows + len(deleted), all_items, all_vectors
        )
    with _timed(timings, "check_and_write"):
        name, path, full = publish_searcher(
            settings,
            old.searcher,
            all_vectors,
            all_items,
            _update_manifest(old, changes, since, health, balanced)
            | {"embeddings_version": embeddings_version},
        )
    crash_point("index.published")
    log.info(
        f"published {name} from {old.path.name}: +{changes.inserts.num_rows} "
        f"~{changes.updates.num_rows} -{len(changes.deletes)}, {_recall_text(full)}"
    )
    result.kind, result.index_version, result.path = "update", name, str(path)
    result.size, result.recall_at_10 = full["size"], full["recall_at_10"]
    result.recall_at_10_strict = full["recall_at_10_strict"]
    result.seconds = round(time.monotonic() - t0, 2)
    result.timings = timings
    return result


@dataclass
class _Base:
    """The index version an update starts from: its searcher, manifest and row-aligned
    vectors and items (sorted by item id)."""

    path: Path
    searcher: Any
    manifest: dict[str, Any]
    vectors: np.ndarray
    items: pa.Table


def _load_base(
    settings: Settings, base: Path | str | None, encoder: EncoderRef | None
) -> tuple[_Base, EncoderRef]:
    """The base version (default: the latest) and the encoder to update it with: its own
    encoder version unless given; another version is refused (EncoderMismatch)."""
    from lookalike.registry.encoders import fetch_encoder

    if not isinstance(base, Path):
        base = versions.base_version(settings, base or "latest")
    if base is None:
        raise IndexBuildError("no index version to update: run `lookalike index build` first")
    searcher, manifest = sx.load_version(base)
    vectors, items = sx.load_rows(base)
    enc = manifest["encoder"]
    if encoder is None:
        encoder = fetch_encoder(settings, enc["version"])
    if (encoder.name, encoder.version) != (enc["name"], enc["version"]):
        raise EncoderMismatch(
            f"index {base.name} holds {enc['name']}/{enc['version']}, asked to add "
            f"{encoder.name}/{encoder.version}: never two encoder versions in one index "
            "(run `lookalike index build` for the new encoder)"
        )
    return _Base(base, searcher, manifest, vectors, items), encoder


def _update_manifest(
    base: _Base,
    changes: CatalogChanges,
    since: int,
    health: dict[str, float],
    balanced: float,
) -> dict[str, Any]:
    """What an update's manifest says beyond the recall check: the base's encoder and
    parameters, the new watermark, the net changes and the partitions' health."""
    return {
        "kind": "update",
        "encoder": base.manifest["encoder"],
        "catalog_version": changes.until_version,
        "params": base.manifest["params"],
        "base_index_version": base.path.name,
        "changes": changes.summary(),
        "changed_since_rebalance": since,
        "health": health,
        "balanced_imbalance": balanced,
    }


def _embed_rows(encoder: EncoderRef, changed: pa.Table) -> np.ndarray:
    """Vectors of the inserted and updated rows' images, on the driver (changes are few)."""
    return embed_images(
        load_predict(encoder.local_dir),
        changed.column("image").to_pylist(),
        input_size=encoder.input_size,
        channels=encoder.channels,
    ).reshape(changed.num_rows, encoder.embedding_size)


def _record_embeddings(
    settings: Settings,
    encoder: EncoderRef,
    changes: CatalogChanges,
    changed: pa.Table,
    new_vectors: np.ndarray,
    base_name: str,
) -> None:
    """Commit the new vectors and the deletes to ``embeddings`` (one MERGE) before any index
    version uses them."""
    merge_embeddings(
        settings.embeddings_uri,
        embedding_rows(
            encoder,
            changes.until_version,
            upserts=(
                changed.column("item_id").to_pylist(),
                changed.column("content_hash").to_pylist(),
                new_vectors,
            ),
            deletes=changes.deletes,
        ),
        commit_metadata={
            "lookalike.encoder": f"{encoder.name}/{encoder.version}",
            "lookalike.catalog_version": str(changes.until_version),
            "lookalike.index_base": base_name,
        },
    )


def _apply_changes(
    base: _Base, deletes: list[str], changed: pa.Table, new_vectors: np.ndarray
) -> tuple[pa.Table, np.ndarray, list[str]]:
    """Deletes and upserts on the base's searcher, and the same edits on its row-aligned
    copies, sorted by item id again. Returns (items, vectors, ids actually deleted)."""
    changed_ids = changed.column("item_id").to_pylist()
    old_ids = base.items.column("item_id").to_pylist()
    position = {item_id: j for j, item_id in enumerate(old_ids)}
    deleted = [i for i in deletes if i in position]
    if deleted:
        base.searcher.delete(deleted)
    if changed_ids:
        base.searcher.upsert(changed_ids, new_vectors)
    keep = np.ones(len(old_ids), dtype=bool)
    for item_id in [*deleted, *changed_ids]:
        j = position.get(item_id)
        if j is not None:
            keep[j] = False
    changed_rows = changed.select(ITEM_COLUMNS).cast(ITEMS_SCHEMA)
    kept = base.items.filter(pa.array(keep)).cast(ITEMS_SCHEMA)
    all_items = pa.concat_tables([kept, changed_rows])
    all_vectors = np.concatenate([base.vectors[keep], new_vectors])
    order = np.argsort(np.asarray(all_items.column("item_id").to_pylist(), dtype=object))
    all_items = all_items.take(pa.array(order))
    all_vectors = all_vectors[order]
    if all_items.num_rows == 0:
        raise IndexBuildError("every item was deleted: refusing to publish an empty index")
    return all_items, all_vectors, deleted


def _rebalance_if_due(
    settings: Settings, base: _Base, n_changed: int, items: pa.Table, vectors: np.ndarray
) -> tuple[int, dict[str, float], float, bool]:
    """Rebalance the partitions when enough changed since the last rebalance
    (``index_rebalance_share``) or they grew lopsided against how even they were then:
    ``base.searcher`` becomes a new build over ``items`` / ``vectors`` (the float32 rows)
    with the base's parameters. ScaNN's own ``rebalance`` retrains from the re-ordering
    vectors, which a wide index stores in bfloat16: no longer unit length, so spherical
    partitioning refuses them. Returns (changes since the last rebalance, health after,
    the imbalance right after the last rebalance, rebalanced?)."""
    n_items = items.num_rows
    since = int(base.manifest.get("changed_since_rebalance", 0)) + n_changed
    balanced = float(base.manifest.get("balanced_imbalance", LEGACY_BALANCED_IMBALANCE))
    health = _health(base.searcher)
    imbalance = _imbalance(health)
    if base.manifest["params"]["num_leaves"] and (
        since >= settings.index_rebalance_share * n_items
        or imbalance > balanced + MAX_IMBALANCE_GROWTH
    ):
        log.info(
            f"{since} changes since the last rebalance, imbalance {imbalance:.2f} "
            f"(after the last one: {balanced:.2f}): rebalancing"
        )
        params = sx.IndexParams(**base.manifest["params"])
        base.searcher = sx.build_searcher(vectors, items.column("item_id").to_pylist(), params)
        health = _health(base.searcher)
        return 0, health, _imbalance(health), True
    return since, health, balanced, False


def _recall_text(manifest: dict[str, Any]) -> str:
    return f"recall@10 {manifest['recall_at_10']} (strict {manifest['recall_at_10_strict']})"


def _imbalance(health: dict[str, float]) -> float:
    return health.get(IMBALANCE_STAT, 0.0)


def _health(searcher: Any) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in searcher.get_health_stats().items()}
    except Exception:  # brute-force searchers have no partitions to report on
        return {}
