"""ScaNN searchers keyed by item id, their recall check, and index versions on disk.

An index version is a directory: ``searcher/`` (ScaNN's serialized files), ``vectors.npy``
and ``items.parquet`` (the indexed vectors and item metadata, row-aligned: what an incremental
update starts from and what the service answers with), and ``manifest.json`` (index version,
encoder name+version, dimension, item count, catalogue Delta version = the change-feed
watermark, build parameters, measured recall, and a SHA-256 of every file). Loading verifies
every checksum first: a damaged version is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lookalike.faults import crash_point
from lookalike.index.recall import (
    DEFAULT_TOLERANCE,
    RecallResult,
    exact_top_indices,
    recall_at_k,
    rows_of,
)

MANIFEST = "manifest.json"
SEARCHER_DIR = "searcher"
VECTORS = "vectors.npy"
ITEMS = "items.parquet"
BRUTE_FORCE_BELOW = 2_000
#: how the exact re-ordering stage stores the vectors (ScaNN's ReorderType names, lower case)
REORDER_TYPES = ("float32", "bfloat16", "int8")


class IndexVersionError(RuntimeError):
    """An index version is missing, damaged or inconsistent; the message says which."""


class RecallTooLow(RuntimeError):
    """A searcher's measured recall is below the publishing threshold."""


@dataclass(frozen=True)
class IndexParams:
    """ScaNN build parameters; ``num_leaves == 0`` means exact (brute-force) scoring.

    Defaults measured on the catalogue's own embeddings (bench/index.py): metric-learning
    embeddings sit in tight clusters with many near-ties, so the asymmetric-hashing scores
    get a generous exact re-ordering to keep recall@10 >= 0.99. The vectors are unit length,
    so the partitions are spherical k-means (centroids on the sphere): the same recall with
    half the leaves searched (~30% more queries/s at recall@10 0.99 than Euclidean k-means).
    The field defaults are the settings of versions built before the others existed; what
    ``for_size`` picks for wide vectors is in ``WIDE``.
    """

    num_leaves: int
    num_leaves_to_search: int
    reorder: int
    ah_dims: int = 1
    ah_threshold: float = 0.2
    spherical: bool = True
    reorder_type: str = "float32"  # one of REORDER_TYPES
    int8_centroids: bool = False

    def __post_init__(self) -> None:
        if self.reorder_type not in REORDER_TYPES:
            raise ValueError(
                f"reorder_type: {self.reorder_type!r} is not one of {', '.join(REORDER_TYPES)}"
            )

    @classmethod
    def for_size(cls, n: int, dim: int = 0) -> IndexParams:
        """Partitioning that grows with the catalogue (about sqrt(n) leaves, 1/16 searched);
        vectors of ``dim`` >= ``WIDE_FROM_DIM`` get the ``WIDE`` quantisation."""
        if n < BRUTE_FORCE_BELOW:
            return cls(num_leaves=0, num_leaves_to_search=0, reorder=0)
        leaves = int(min(2000, max(50, round(math.sqrt(n)))))
        params = cls(num_leaves=leaves, num_leaves_to_search=max(10, leaves // 16), reorder=250)
        return replace(params, **WIDE) if dim >= WIDE_FROM_DIM else params


#: Quantisation for wide vectors (the default encoder's 384 dims), measured on the product's
#: own vectors (bench/index.py at 70k, bench/million_variants.py at 1M): 2-dimensional AH
#: blocks reach the distance-aware recall of 1-dimensional ones at the same leaves and
#: re-ordering, 1.7-1.8x faster; bfloat16 re-ordering vectors with int8-scored centroids
#: halve the index memory at the same recall and speed (int8 re-ordering loses recall).
#: bfloat16 scores are ~1e-3 off: the service re-scores its results from float32 vectors.
#: Narrow vectors lose recall to both (a 32-d test set: 0.99 -> 0.985), so they keep the
#: field defaults.
WIDE: dict[str, Any] = {"ah_dims": 2, "reorder_type": "bfloat16", "int8_centroids": True}
WIDE_FROM_DIM = 256


def build_searcher(
    vectors: np.ndarray, ids: list[str] | None, params: IndexParams, k: int = 10
) -> Any:
    """A dot-product ScaNN searcher over L2-normalised ``vectors`` with ``ids`` as docids
    (``None``: results are row numbers, which is what the benchmark compares)."""
    from scann import scann_ops_pybind
    from scann.scann_ops.py.scann_builder import ReorderType

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) == 0 or (ids is not None and len(vectors) != len(ids)):
        raise ValueError(
            f"need as many ids as vectors (> 0), got {len(ids or [])} ids, {len(vectors)} vectors"
        )
    docids = None if ids is None else list(ids)
    builder = scann_ops_pybind.builder(vectors, k, "dot_product")
    if params.num_leaves == 0:
        return builder.score_brute_force().build(docids=docids)
    return (
        builder.tree(
            num_leaves=min(params.num_leaves, len(vectors)),
            num_leaves_to_search=min(params.num_leaves_to_search, params.num_leaves),
            training_sample_size=min(len(vectors), 250_000),
            spherical=params.spherical,
            quantize_centroids=params.int8_centroids,
        )
        .score_ah(params.ah_dims, anisotropic_quantization_threshold=params.ah_threshold)
        .reorder(params.reorder, quantize=getattr(ReorderType, params.reorder_type.upper()))
        .build(docids=docids)
    )


def exact_neighbours(
    vectors: np.ndarray, ids: list[str], queries: np.ndarray, k: int
) -> list[list[str]]:
    """Ids of the exact top-k by dot product, best first."""
    return [[ids[j] for j in row] for row in exact_top_indices(vectors, queries, k)]


@dataclass(frozen=True)
class SearchTuning:
    """Query-time settings of a partitioned index version, chosen at publish (``tune``) and
    kept in its manifest (``search``): partitions searched and candidates re-ordered exactly.
    None: the searcher's built-in value (``IndexParams``)."""

    leaves_to_search: int | None = None
    reorder: int | None = None

    def options(self, k: int = 10) -> dict[str, int]:
        """Keyword arguments of ``search_batched`` for ``k`` results (re-ordering never
        fewer candidates than are asked for)."""
        out = {}
        if self.leaves_to_search:
            out["leaves_to_search"] = int(self.leaves_to_search)
        if self.reorder:
            out["pre_reorder_num_neighbors"] = max(int(self.reorder), k)
        return out

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> SearchTuning:
        """The tuning an index version's manifest records (none: the built-in values)."""
        return cls(**(manifest.get("search") or {}))


@dataclass(frozen=True)
class RecallProbe:
    """The sampled queries of a recall measurement and their exact top-k, computed once:
    tuning measures the same queries at several settings, and the exact search over every
    item is most of each measurement's cost (it grows with items x dimension)."""

    queries: np.ndarray
    exact: np.ndarray
    k: int

    @classmethod
    def sample(
        cls, vectors: np.ndarray, *, k: int = 10, sample: int = 500, seed: int = 0
    ) -> RecallProbe:
        """``sample`` of the indexed vectors (seeded) as queries, with their exact top-k."""
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)
        queries = vectors[pick]
        return cls(queries, exact_top_indices(vectors, queries, k), k)


def measure_recall(
    searcher: Any,
    vectors: np.ndarray,
    ids: list[str],
    *,
    k: int = 10,
    sample: int = 500,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    tuning: SearchTuning | None = None,
    probe: RecallProbe | None = None,
) -> RecallResult:
    """recall@k of the searcher against exact search, for a sample of the indexed items as
    queries; ``with_ties`` (scores within ``tolerance`` of the k-th count) is what gates.
    ``tuning``: query-time settings (None: the searcher's built-in ones). ``probe``: the
    queries and exact answers of an earlier measurement of ``vectors`` (then ``k``,
    ``sample`` and ``seed`` are the probe's)."""
    probe = probe or RecallProbe.sample(vectors, k=k, sample=sample, seed=seed)
    options = (tuning or SearchTuning()).options(probe.k)
    found, distances = searcher.search_batched(
        probe.queries, final_num_neighbors=probe.k, **options
    )
    rows = rows_of(found, distances, {item_id: j for j, item_id in enumerate(ids)})
    return recall_at_k(rows, vectors, probe.queries, probe.k, tolerance, exact=probe.exact)


def leaves_ladder(most: int, least: int = 4) -> list[int]:
    """Partitions searched to try, fewest first: ``most`` divided by sqrt(2) step by step
    down to ``least``. Halving overshot: at 1M items the cheapest setting reaching the
    target sat between two rungs, and the next rung costs twice the search."""
    ladder = [most]
    while round(ladder[-1] / math.sqrt(2)) >= least:
        ladder.append(round(ladder[-1] / math.sqrt(2)))
    return sorted(set(ladder))


#: re-ordered candidates to try below the built value, fewest first
REORDER_LADDER = (50, 100)


def tune(
    searcher: Any,
    vectors: np.ndarray,
    ids: list[str],
    params: dict[str, Any],
    *,
    want: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[SearchTuning, RecallResult]:
    """The cheapest query-time settings whose recall@10 with ties reaches ``want``: the
    fewest partitions searched (``leaves_ladder``), then the fewest candidates re-ordered
    there. ``params`` (the build's ``IndexParams`` as a dict) are the ceiling: clustered
    embeddings often reach the target with a fraction of them, and search cost grows with
    both (bench/serving.py at 1M items). An exact index has nothing to tune; when no step
    reaches ``want`` the ceiling is kept (the publish gate then decides)."""
    most, reorder = int(params.get("num_leaves_to_search") or 0), int(params.get("reorder") or 0)
    if not most:
        return SearchTuning(), measure_recall(searcher, vectors, ids, tolerance=tolerance)
    probe = RecallProbe.sample(vectors)  # every step below measures the same queries
    for leaves in leaves_ladder(most):
        tuning = SearchTuning(leaves, reorder)
        recall = measure_recall(
            searcher, vectors, ids, tolerance=tolerance, tuning=tuning, probe=probe
        )
        if recall.with_ties < want:
            continue
        for fewer in (r for r in REORDER_LADDER if r < reorder):
            cheaper = SearchTuning(leaves, fewer)
            r = measure_recall(
                searcher, vectors, ids, tolerance=tolerance, tuning=cheaper, probe=probe
            )
            if r.with_ties >= want:
                return cheaper, r
        return tuning, recall
    return SearchTuning(most, reorder), recall


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (hex): what an index or bundle manifest records per file, so a copy
    that changed on disk or in transit is refused when loaded."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_version(
    directory: Path,
    searcher: Any,
    manifest: dict[str, Any],
    *,
    vectors: np.ndarray | None = None,
    items: pa.Table | None = None,
) -> dict[str, Any]:
    """Serialize a searcher (+ its vectors and item rows) and the manifest into ``directory``
    atomically: everything is written into a temp dir that is renamed into place last."""
    directory = Path(directory)
    if directory.exists():
        raise IndexVersionError(f"index version already exists: {directory}")
    if items is not None and vectors is not None and items.num_rows != len(vectors):
        raise ValueError(f"{items.num_rows} item rows for {len(vectors)} vectors")
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / SEARCHER_DIR).mkdir(parents=True)
    searcher.serialize(str(tmp / SEARCHER_DIR), relative_path=True)
    if vectors is not None:
        np.save(tmp / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32))
    if items is not None:
        pq.write_table(items, tmp / ITEMS)
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    full = dict(manifest) | {
        "files": {str(p.relative_to(tmp)): file_sha256(p) for p in files},
        "size": int(searcher.size()),
    }
    (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True))
    crash_point("index.written_before_rename")
    os.replace(tmp, directory)
    return full


def read_manifest(directory: Path) -> dict[str, Any]:
    """An index version's manifest; a folder without one, or a damaged one, is an
    ``IndexVersionError`` (never half-read)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise IndexVersionError(f"not an index version (no {MANIFEST}): {directory}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise IndexVersionError(f"damaged manifest {path}: {e}") from None


def verify_version(directory: Path) -> dict[str, Any]:
    """Check every file against the manifest's checksums; returns the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for rel, digest in manifest.get("files", {}).items():
        path = directory / rel
        if not path.is_file():
            raise IndexVersionError(f"index version {directory}: missing file {rel}")
        if file_sha256(path) != digest:
            raise IndexVersionError(f"index version {directory}: checksum mismatch for {rel}")
    return manifest


def load_version(directory: Path) -> tuple[Any, dict[str, Any]]:
    """(searcher, manifest) of a verified index version."""
    from scann import scann_ops_pybind

    manifest = verify_version(directory)
    searcher = scann_ops_pybind.load_searcher(str(Path(directory) / SEARCHER_DIR))
    if int(searcher.size()) != manifest["size"]:
        raise IndexVersionError(
            f"index version {directory}: {searcher.size()} items, manifest says {manifest['size']}"
        )
    return searcher, manifest


def load_rows(directory: Path) -> tuple[np.ndarray, pa.Table]:
    """(vectors, item rows) of an index version, row-aligned (call after verify/load)."""
    directory = Path(directory)
    if not (directory / VECTORS).is_file() or not (directory / ITEMS).is_file():
        raise IndexVersionError(f"index version {directory}: no {VECTORS}/{ITEMS}")
    vectors = np.load(directory / VECTORS)
    items = pq.read_table(directory / ITEMS)
    if items.num_rows != len(vectors):
        raise IndexVersionError(
            f"index version {directory}: {items.num_rows} items but {len(vectors)} vectors"
        )
    return vectors, items
