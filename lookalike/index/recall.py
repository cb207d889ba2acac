"""recall@k of an approximate search against exact search: the one definition every gate uses.

Two numbers, both reported:

- ``with_ties`` (ann-benchmarks' definition, the one that gates): a returned item counts when
  its exact score is within ``tolerance`` of the k-th best exact score. Catalogue embeddings
  hold exact duplicates and near-identical photos; which of twenty equal items fills the k-th
  place is a float rounding contest, not a retrieval error, so it must not fail a gate.
- ``strict``: the share of the exact top-k ids returned (the textbook number, reported beside).

Scores of the returned items and the k-th exact score are both recomputed here, in float64,
from the vectors (never taken from the searcher): an exact searcher then passes whatever its
own float32 rounding did, with any tolerance above float32 noise (~1e-6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: ann-benchmarks' epsilon; ``Settings.recall_tolerance`` (LOOKALIKE_RECALL_TOLERANCE) overrides.
DEFAULT_TOLERANCE = 1e-3
_CHUNK = 256


@dataclass(frozen=True)
class RecallResult:
    """recall@k with ties (gating) and strict (reported beside it)."""

    with_ties: float
    strict: float
    k: int
    tolerance: float
    queries: int

    def describe(self) -> str:
        """``recall@10 0.9990 (strict 0.9486)``: the form every gate logs."""
        return f"recall@{self.k} {self.with_ties:.4f} (strict {self.strict:.4f})"


def exact_top_indices(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows of the exact top-k by dot product, best first (partial sort: linear per query)."""
    k = min(k, len(vectors))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), _CHUNK):
        sims = queries[start : start + _CHUNK] @ vectors.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out[start : start + _CHUNK] = np.take_along_axis(top, order, axis=1)
    return out


def _scores(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Exact float64 dot products of ``vectors[rows]`` with ``query``; the same arithmetic
    for the same row gives the same bits, so a returned item equal to the k-th ties exactly."""
    return (vectors[rows].astype(np.float64) * query.astype(np.float64)).sum(axis=1)


def recall_at_k(
    found: Sequence[Sequence[int]] | np.ndarray,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    exact: np.ndarray | None = None,
) -> RecallResult:
    """recall@k of ``found`` (per query, rows of ``vectors`` returned, best first) against
    exact dot-product search of ``queries`` over ``vectors``.

    Only the first ``k`` entries per query are read; negative, out-of-range and repeated rows
    (ScaNN pads short answers) are not results. With fewer than ``k`` vectors the denominator
    is their count. ``exact`` (``exact_top_indices`` of the same arguments) saves recomputing
    the truth when one query set is scored many times (the benchmark).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if len(found) != len(queries):
        raise ValueError(f"{len(found)} answers for {len(queries)} queries")
    n = len(vectors)
    kk = min(k, n)
    if len(queries) == 0 or kk == 0:
        return RecallResult(1.0, 1.0, k, tolerance, len(queries))
    truth = exact_top_indices(vectors, queries, kk) if exact is None else exact[:, :kk]
    tied = strict = 0
    for f, t, q in zip(found, truth, queries, strict=True):
        rows = np.asarray(f, dtype=np.int64).reshape(-1)[:k]
        rows = np.unique(rows[(rows >= 0) & (rows < n)])
        if len(rows) == 0:
            continue
        kth = float(_scores(vectors, t, q).min())
        tied += min(kk, int(np.count_nonzero(_scores(vectors, rows, q) >= kth - tolerance)))
        strict += len(np.intersect1d(rows, t))
    total = len(queries) * kk
    return RecallResult(tied / total, strict / total, k, tolerance, len(queries))


def rows_of(
    found: Sequence[Sequence[Any]] | np.ndarray,
    distances: np.ndarray | None = None,
    position: Mapping[Any, int] | None = None,
) -> list[np.ndarray]:
    """A ScaNN answer as rows for ``recall_at_k``: docids mapped through ``position`` (unknown
    ids -> -1), and entries with a NaN distance (ScaNN's padding when it has fewer than k
    results: it repeats the first docid) -> -1."""
    out: list[np.ndarray] = []
    for i, f in enumerate(found):
        if position is None:
            rows = np.asarray(f, dtype=np.int64).reshape(-1).copy()
        else:
            rows = np.asarray([position.get(x, -1) for x in f], dtype=np.int64)
        if distances is not None:
            d = np.asarray(distances[i], dtype=np.float64).reshape(-1)[: len(rows)]
            rows[: len(d)][np.isnan(d)] = -1
        out.append(rows)
    return out
