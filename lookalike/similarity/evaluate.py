"""Retrieval evaluation: the ONE function every caller uses (train, tune, promote, bench).

Queries are searched against an index by exact cosine similarity (embeddings are
L2-normalised, so a dot product); an answer is relevant when it has the query's category.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (flattened first), so inner product is cosine similarity."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_metrics(
    queries: np.ndarray,
    query_labels: np.ndarray,
    index: np.ndarray,
    index_labels: np.ndarray,
    *,
    ks: Sequence[int] = (1, 5, 10),
    category_names: dict[int, str] | None = None,
    chunk: int = 256,
) -> dict[str, Any]:
    """precision@1, recall@k (a same-category item in the top k), mAP@R, per-category p@1.

    mAP@R (Musgrave et al., "A Metric Learning Reality Check"): for a query with R relevant
    index items, the mean over the top R positions of precision@i at relevant positions.
    """
    q, idx = l2_normalise(queries), l2_normalise(index)
    qy, iy = np.asarray(query_labels), np.asarray(index_labels)
    if len(q) == 0 or len(idx) == 0:
        raise ValueError("retrieval_metrics needs at least one query and one index item")
    counts = {c: int(n) for c, n in zip(*np.unique(iy, return_counts=True), strict=True)}
    r_per_query = np.array([counts.get(c, 0) for c in qy])
    kmax = max(max(ks), 1)
    r_max = int(min(max(r_per_query.max(), 1), len(idx)))
    depth = max(kmax, r_max)

    hits_at_k = {k: np.zeros(len(q), dtype=bool) for k in ks}
    ap = np.zeros(len(q), dtype=np.float64)
    for s in range(0, len(q), chunk):
        sims = q[s : s + chunk] @ idx.T
        d = min(depth, sims.shape[1])
        top = np.argpartition(-sims, d - 1, axis=1)[:, :d]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        rel = iy[top] == qy[s : s + chunk, None]
        for k in ks:
            hits_at_k[k][s : s + chunk] = rel[:, :k].any(axis=1)
        r = r_per_query[s : s + chunk]
        pos = np.arange(1, d + 1)
        within = pos[None, :] <= r[:, None]
        prec = np.cumsum(rel, axis=1) / pos[None, :]
        ap[s : s + chunk] = (prec * rel * within).sum(axis=1) / np.maximum(r, 1)

    top1 = hits_at_k[ks[0]] if ks[0] == 1 else None
    if top1 is None:
        raise ValueError("ks must start with 1")
    per_category = {}
    for c in np.unique(qy):
        name = (category_names or {}).get(int(c), str(int(c)))
        per_category[name] = round(float(top1[qy == c].mean()), 4)
    return {
        "precision_at_1": round(float(top1.mean()), 4),
        **{f"recall_at_{k}": round(float(hits_at_k[k].mean()), 4) for k in ks if k != 1},
        "map_at_r": round(float(ap.mean()), 4),
        "queries": len(q),
        "index_size": len(idx),
        "per_category_precision_at_1": per_category,
    }


def raw_pixel_embeddings(x: np.ndarray) -> np.ndarray:
    """The baseline: cosine similarity of raw pixels (mean-centred per image)."""
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return l2_normalise(flat - flat.mean(axis=1, keepdims=True))
