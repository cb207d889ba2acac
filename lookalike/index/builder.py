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
  failed run leaves no index pointing at vectors that were never recorded.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lookalike.catalog.changes import catalog_changes
from lookalike.catalog.table import open_table, resolve_version
from lookalike.config import Settings
from lookalike.index import scann_index as sx
from lookalike.index.embeddings import embed_catalog, merge_embeddings, read_embeddings
from lookalike.index.embeddings import staged_rows as embedding_rows
from lookalike.registry.encoders import EncoderRef, embed_images, load_predict

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Rebalance when partitions grew this much above their mean size on average (ScaNN stat).
MAX_PARTITION_IMBALANCE = 1.0

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
        return asdict(self)


def _log(msg: str) -> None:
    print(f"[index] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- versions on disk


def list_versions(settings: Settings) -> list[Path]:
    """Published index versions, oldest first (temp dirs of running builds are hidden)."""
    root = settings.index_dir
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("v"))


def latest_version(settings: Settings) -> Path | None:
    versions = list_versions(settings)
    return versions[-1] if versions else None


def _next_version(settings: Settings) -> str:
    versions = list_versions(settings)
    n = int(versions[-1].name[1:]) + 1 if versions else 1
    return f"v{n:06d}"


def prune_versions(settings: Settings, keep: int | None = None) -> list[str]:
    """Delete all but the newest ``keep`` versions (bundles hold their own copies)."""
    keep = keep or settings.index_keep_versions
    old = list_versions(settings)[:-keep]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return [p.name for p in old]


def find_version(settings: Settings, name: str | None) -> Path:
    """An index version by name (``v000003`` or ``3``), or the latest."""
    if name is None:
        found = latest_version(settings)
        if found is None:
            raise IndexBuildError("no index version yet: run `lookalike index build`")
        return found
    label = f"v{int(name):06d}" if name.isdigit() else name
    path = settings.index_dir / label
    if not path.is_dir():
        raise IndexBuildError(f"no index version {label!r} under {settings.index_dir}")
    return path


# ----------------------------------------------------------------- building blocks


def catalog_items(settings: Settings, version: int) -> pa.Table:
    """Item metadata (no images) of the catalogue at ``version``, sorted by item id."""
    dataset = open_table(settings.catalog_path, version).to_pyarrow_dataset()
    parts = [
        pa.Table.from_batches([b]).cast(ITEMS_SCHEMA)
        for b in dataset.to_batches(columns=ITEM_COLUMNS)
        if b.num_rows
    ]
    table = pa.concat_tables(parts) if parts else ITEMS_SCHEMA.empty_table()
    return table.sort_by("item_id")


def check_recall(
    settings: Settings, searcher: Any, vectors: np.ndarray, ids: list[str]
) -> sx.RecallResult:
    """The publish gate: recall@10 with ties (``settings.recall_tolerance``) must reach
    ``settings.index_min_recall``, else RecallTooLow. Strict recall is logged beside it."""
    recall = sx.measure_recall(searcher, vectors, ids, k=10, tolerance=settings.recall_tolerance)
    if recall.with_ties < settings.index_min_recall:
        raise sx.RecallTooLow(f"{recall.describe()} < {settings.index_min_recall} (not published)")
    _log(f"{recall.describe()} >= {settings.index_min_recall}")
    return recall


def _publish(
    settings: Settings,
    searcher: Any,
    vectors: np.ndarray,
    items: pa.Table,
    manifest: dict[str, Any],
) -> tuple[str, Path, dict[str, Any]]:
    """Recall check, then write the next version; returns (name, path, full manifest)."""
    recall = check_recall(settings, searcher, vectors, items.column("item_id").to_pylist())
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    name = _next_version(settings)
    full = sx.write_version(
        settings.index_dir / name,
        searcher,
        manifest
        | {
            "index_version": name,
            "dimension": int(vectors.shape[1]),
            "recall_at_10": round(recall.with_ties, 4),
            "recall_at_10_strict": round(recall.strict, 4),
            "recall_tolerance": recall.tolerance,
            "built_at": datetime.now(UTC).isoformat(),
        },
        vectors=vectors,
        items=items,
    )
    return name, settings.index_dir / name, full


def _encoder_dict(encoder: EncoderRef) -> dict[str, Any]:
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
    """Embed the catalogue (Spark, only what is missing) and build a new index version."""
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    version = resolve_version(settings.catalog_path, catalog_version)
    if spark is not None:
        _log(f"embedding catalogue v{version} with {encoder.name}/{encoder.version} (Spark)")
        summary = embed_catalog(spark, settings, encoder, version)
        _log(f"embedded {summary.embedded}, deleted {summary.deleted}, kept {summary.unchanged}")
    timings["embed"] = round(time.monotonic() - t0, 2)
    t = time.monotonic()
    items = catalog_items(settings, version)
    if items.num_rows == 0:
        raise IndexBuildError(f"catalogue version {version} has no items to index")
    ids, vectors, hashes = read_embeddings(settings.embeddings_path, encoder.name, encoder.version)
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
    vectors = vectors[[row[i] for i in items.column("item_id").to_pylist()]]
    timings["read"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    params = sx.IndexParams.for_size(len(vectors))
    _log(f"building ScaNN over {len(vectors)} vectors ({params})")
    searcher = sx.build_searcher(vectors, items.column("item_id").to_pylist(), params)
    timings["build"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    name, path, manifest = _publish(
        settings,
        searcher,
        vectors,
        items,
        {
            "kind": "full",
            "encoder": _encoder_dict(encoder),
            "catalog_version": version,
            "params": asdict(params),
            "base_index_version": None,
            "changed_since_rebalance": 0,
        },
    )
    timings["check_and_write"] = round(time.monotonic() - t, 2)
    _log(f"published {name}: {manifest['size']} items, {_recall_text(manifest)}")
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


# ----------------------------------------------------------------- incremental update


def update_index(
    settings: Settings,
    *,
    base: Path | None = None,
    encoder: EncoderRef | None = None,
) -> IndexResult:
    """Apply the catalogue's net changes since ``base``'s watermark; a new version, or none.

    ``encoder`` defaults to the base's own encoder version (fetched from the registry); a
    different version is refused: a new encoder needs a full build.
    """
    from lookalike.registry.encoders import fetch_encoder

    t0 = time.monotonic()
    timings: dict[str, float] = {}
    base = base or latest_version(settings)
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
    timings["load"] = round(time.monotonic() - t0, 2)
    t = time.monotonic()
    watermark = int(manifest["catalog_version"])
    changes = catalog_changes(settings.catalog_path, watermark, columns=[*ITEM_COLUMNS, "image"])
    timings["changes"] = round(time.monotonic() - t, 2)
    result = IndexResult(
        kind="none",
        index_version=None,
        path=None,
        base_index_version=base.name,
        catalog_version=changes.until_version,
        changes=changes.summary(),
    )
    if changes.empty:
        _log(f"no catalogue changes since v{watermark}: {base.name} stays current")
        result.size = int(manifest["size"])
        result.seconds = round(time.monotonic() - t0, 2)
        return result

    t = time.monotonic()
    changed = pa.concat_tables([changes.inserts, changes.updates])
    changed_ids = changed.column("item_id").to_pylist()
    new_vectors = embed_images(
        load_predict(encoder.local_dir),
        changed.column("image").to_pylist(),
        input_size=encoder.input_size,
        channels=encoder.channels,
    ).reshape(len(changed_ids), encoder.embedding_size)
    timings["embed"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    merge_embeddings(
        settings.embeddings_path,
        embedding_rows(
            encoder,
            changes.until_version,
            upserts=(changed_ids, changed.column("content_hash").to_pylist(), new_vectors),
            deletes=changes.deletes,
        ),
        commit_metadata={
            "lookalike.encoder": f"{encoder.name}/{encoder.version}",
            "lookalike.catalog_version": str(changes.until_version),
            "lookalike.index_base": base.name,
        },
    )
    timings["record_embeddings"] = round(time.monotonic() - t, 2)

    t = time.monotonic()
    old_ids = items.column("item_id").to_pylist()
    position = {item_id: j for j, item_id in enumerate(old_ids)}
    deleted = [i for i in changes.deletes if i in position]
    if deleted:
        searcher.delete(deleted)
    if changed_ids:
        searcher.upsert(changed_ids, new_vectors)
    # the same edits on the row-aligned copies, sorted by item id again
    keep = np.ones(len(old_ids), dtype=bool)
    for item_id in [*deleted, *changed_ids]:
        j = position.get(item_id)
        if j is not None:
            keep[j] = False
    changed_rows = changed.select(ITEM_COLUMNS).cast(ITEMS_SCHEMA)
    all_items = pa.concat_tables([items.filter(pa.array(keep)).cast(ITEMS_SCHEMA), changed_rows])
    all_vectors = np.concatenate([vectors[keep], new_vectors])
    order = np.argsort(np.asarray(all_items.column("item_id").to_pylist(), dtype=object))
    all_items = all_items.take(pa.array(order))
    all_vectors = all_vectors[order]
    if all_items.num_rows == 0:
        raise IndexBuildError("every item was deleted: refusing to publish an empty index")

    n_changed = len(changed_ids) + len(deleted)
    since = int(manifest.get("changed_since_rebalance", 0)) + n_changed
    params = manifest["params"]
    health = _health(searcher)
    imbalance = health.get("partition_avg_relative_positive_imbalance", 0.0)
    if params["num_leaves"] and (
        since >= settings.index_rebalance_share * all_items.num_rows
        or imbalance > MAX_PARTITION_IMBALANCE
    ):
        _log(f"{since} changes since the last rebalance, imbalance {imbalance:.2f}: rebalancing")
        searcher.rebalance()
        result.rebalanced = True
        since = 0
        health = _health(searcher)
    timings["apply"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    name, path, full = _publish(
        settings,
        searcher,
        all_vectors,
        all_items,
        {
            "kind": "update",
            "encoder": enc,
            "catalog_version": changes.until_version,
            "params": params,
            "base_index_version": base.name,
            "changes": changes.summary(),
            "changed_since_rebalance": since,
            "health": health,
        },
    )
    timings["check_and_write"] = round(time.monotonic() - t, 2)
    _log(
        f"published {name} from {base.name}: +{changes.inserts.num_rows} "
        f"~{changes.updates.num_rows} -{len(changes.deletes)}, {_recall_text(full)}"
    )
    result.kind, result.index_version, result.path = "update", name, str(path)
    result.size, result.recall_at_10 = full["size"], full["recall_at_10"]
    result.recall_at_10_strict = full["recall_at_10_strict"]
    result.seconds = round(time.monotonic() - t0, 2)
    result.timings = timings
    return result


def _recall_text(manifest: dict[str, Any]) -> str:
    return f"recall@10 {manifest['recall_at_10']} (strict {manifest['recall_at_10_strict']})"


def _health(searcher: Any) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in searcher.get_health_stats().items()}
    except Exception:  # brute-force searchers have no partitions to report on
        return {}
