"""Benchmark: what spends the 384 dimensions best on the million of the product's own vectors.

    .venv/bin/python -m bench.million_variants [--items 1000000] [--seed 0]

Issue 46, part 3. ``bench.index --million`` measured ScaNN (float re-ordering, float
centroids) against hnswlib; this run measures, side by side in one process on the same
cached million (``bench.million``) and the same 1,000 held-out queries:
- ScaNN 2-dim AH builds with int8 centroids (``quantize_centroids``) and int8 or bfloat16
  re-ordering vectors, 4-dim AH blocks, 2,000 leaves, SOAR spilling;
- a PCA projection to ``--project`` dims (re-normalised) searched by ScaNN or hnswlib for
  ``candidates`` neighbours, re-ordered exactly at full dimension (numpy, one query per
  call): the projection's speed without its recall ceiling;
- hnswlib M16 / ef_construction 200 at full dimension (the reference of index-1m.json).
Every row: distance-aware ``recall_at_10`` and ``recall_at_10_strict``, ``qps`` (one query
per call, one thread), the build's seconds and memory (index RSS growth, plus the full
vectors kept for the re-ordering of the projected rows). ``summary``: each variant's fastest
setting at distance-aware recall@10 >= 0.99, and ScaNN's best against hnswlib's best.
Writes bench/results/index-1m-variants.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.index import (
    REPO,
    build_hnsw,
    exact_truth,
    pca_projection,
    progress,
    recall_keys,
    rss_mib,
    timed_queries,
    unit_rows,
)
from bench.million import ITEMS

LEAVES = (2, 3, 4, 6, 8, 12, 16)
REORDER = (10, 20, 30, 50, 100)
HNSW_EFS = (10, 16, 20, 30, 40, 80)
CANDIDATES = (10, 20, 30, 50, 100)

#: ScaNN builds: name -> (leaves, AH dims per block, int8 centroids, re-ordering type, SOAR).
SCANN_VARIANTS: dict[str, tuple[int, int, bool, str, float | None]] = {
    "ah2": (1000, 2, False, "float32", None),
    "ah2-int8centroids-int8reorder": (1000, 2, True, "int8", None),
    "ah2-int8centroids-bf16reorder": (1000, 2, True, "bfloat16", None),
    "ah4-int8centroids-int8reorder": (1000, 4, True, "int8", None),
    "ah2-2000leaves-int8centroids-int8reorder": (2000, 2, True, "int8", None),
    "ah2-soar-int8centroids-int8reorder": (1000, 2, True, "int8", 1.5),
}


def scann_build(vectors: np.ndarray, variant: tuple[int, int, bool, str, float | None]) -> Any:
    """A dot-product ScaNN searcher as ``build_searcher`` makes it (spherical k-means,
    threshold 0.2) with the variant's leaves, AH blocks, centroid and re-ordering types."""
    from scann.scann_ops.py.scann_builder import ReorderType
    from scann.scann_ops.py.scann_ops_pybind import builder

    leaves, ah_dims, int8_centroids, reorder_type, soar = variant
    leaves = min(leaves, max(2, len(vectors) // 200))  # small smoke sets
    kind = {"float32": ReorderType.FLOAT32, "int8": ReorderType.INT8}
    kind["bfloat16"] = ReorderType.BFLOAT16
    tree = {"soar_lambda": soar} if soar else {}
    return (
        builder(vectors, 10, "dot_product")
        .tree(
            num_leaves=leaves,
            num_leaves_to_search=16,
            training_sample_size=min(len(vectors), 250_000),
            spherical=True,
            quantize_centroids=int8_centroids,
            **tree,
        )
        .score_ah(ah_dims, anisotropic_quantization_threshold=0.2)
        .reorder(100, quantize=kind[reorder_type])
        .build()
    )


Row = Callable[..., dict[str, Any]]


def timed_build(make: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """The built index, its build seconds and RSS growth."""
    before, t = rss_mib(), time.perf_counter()
    index = make()
    build = {"build_seconds": round(time.perf_counter() - t, 1)}
    return index, build | {"memory_mib": round(rss_mib() - before, 1)}


def scann_variant_rows(vectors: np.ndarray, queries: np.ndarray, row: Row) -> list[dict]:
    """Every ScaNN variant at every leaves x reorder setting."""
    rows = []
    for name, variant in SCANN_VARIANTS.items():
        progress(f"ScaNN {name}: building")
        scann, build = timed_build(lambda v=variant: scann_build(vectors, v))
        progress(f"ScaNN {name}: {build}")
        scann.set_num_threads(1)
        for leaves, reorder in itertools.product(LEAVES, REORDER):

            def fn(q, _s=scann, _l=leaves, _r=reorder):
                return _s.search(q, 10, _r, _l)[0]

            found, qps = timed_queries(fn, queries)
            what = {"method": "scann", "variant": name, "leaves_to_search": leaves}
            rows.append(row(found, qps, build, **what, reorder=reorder))
        del scann
    return rows


def rerank(vectors: np.ndarray, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The 10 of ``ids`` nearest ``q`` by exact full-dimension dot product."""
    ids = ids[ids >= 0]
    sims = vectors[ids] @ q
    return ids[np.argsort(-sims)[:10]]


def projected_rows(
    vectors: np.ndarray, queries: np.ndarray, dims: int, row: Row
) -> list[dict[str, Any]]:
    """ScaNN and hnswlib over the PCA-projected vectors, each candidate list re-ordered at
    full dimension; memory adds the full vectors the re-ordering reads."""
    axes = pca_projection(vectors, dims)
    pv, pq = unit_rows(vectors @ axes), unit_rows(queries @ axes)
    full = {"rerank_vectors_mib": round(vectors.nbytes / 2**20, 1)}
    rows = []
    progress(f"PCA-{dims}: ScaNN ah2 int8 build")
    scann, build = timed_build(lambda: scann_build(pv, (1000, 2, True, "int8", None)))
    scann.set_num_threads(1)
    for leaves, cands in itertools.product(LEAVES, CANDIDATES):

        def fn(q, p, _s=scann, _l=leaves, _c=cands):
            ids = _s.search(p, _c, max(_c, 30), _l)[0].astype(np.int64)
            return rerank(vectors, q, ids)

        found, qps = timed_pairs(fn, queries, pq)
        what = {"method": "scann", "variant": f"pca{dims}-ah2-int8-fullrerank"}
        rows.append(row(found, qps, build | full, **what, leaves_to_search=leaves, reorder=cands))
    del scann
    progress(f"PCA-{dims}: hnswlib M16 build")
    hnsw, seconds, rss = build_hnsw(pv, m=16, ef_construction=200)
    build = {"build_seconds": round(seconds, 1), "memory_mib": round(rss, 1)}
    for ef, cands in itertools.product(HNSW_EFS, CANDIDATES):
        if cands > max(ef, 10) * 2:
            continue
        hnsw.set_ef(max(ef, cands))

        def fn(q, p, _c=cands):
            return rerank(vectors, q, hnsw.knn_query(p, k=_c)[0][0].astype(np.int64))

        found, qps = timed_pairs(fn, queries, pq)
        what = {"method": "hnswlib", "variant": f"pca{dims}-M16-fullrerank", "ef": ef}
        rows.append(row(found, qps, build | full, **what, candidates=cands))
    return rows


def timed_pairs(fn: Any, queries: np.ndarray, projected: np.ndarray) -> tuple[list, float]:
    """``timed_queries`` for searchers that take the full and the projected query."""
    fn(queries[0], projected[0])
    t = time.perf_counter()
    found = [fn(q, p) for q, p in zip(queries, projected, strict=True)]
    return found, len(queries) / (time.perf_counter() - t)


def hnsw_rows(vectors: np.ndarray, queries: np.ndarray, row: Row) -> list[dict[str, Any]]:
    """hnswlib M16 / ef_construction 200 at full dimension, every ef."""
    hnsw, seconds, rss = build_hnsw(vectors, m=16, ef_construction=200)
    build = {"build_seconds": round(seconds, 1), "memory_mib": round(rss, 1)}
    rows = []
    for ef in HNSW_EFS:
        hnsw.set_ef(max(ef, 10))
        found, qps = timed_queries(lambda q: hnsw.knn_query(q, k=10)[0][0], queries)
        rows.append(row(found, qps, build, method="hnswlib", variant="M16", ef=ef))
    return rows


def fastest_at(rows: list[dict[str, Any]], want: float = 0.99) -> dict[str, Any]:
    """Per variant, the fastest row with distance-aware recall@10 >= ``want`` (None when
    none reaches it), and ScaNN's best over hnswlib's best."""
    best: dict[str, Any] = {}
    for r in rows:
        key = f"{r['method']}/{r['variant']}"
        ok = r["recall_at_10"] >= want and (best.get(key) is None or r["qps"] > best[key]["qps"])
        best[key] = r if ok else best.get(key)
    top = {
        m: max((r for k, r in best.items() if r and k.startswith(m)), key=lambda r: r["qps"])
        for m in ("scann", "hnswlib")
        if any(r and k.startswith(m) for k, r in best.items())
    }
    ratio = None
    if len(top) == 2:
        ratio = round(top["scann"]["qps"] / top["hnswlib"]["qps"], 2)
    return {"recall_min": want, "per_variant": best, "best": top, "scann_vs_hnswlib_qps": ratio}


def run(settings: Any, items: int, seed: int, project: int) -> dict[str, Any]:
    """All rows on the cached million, judged against exact full-dimension truth."""
    from bench.million import build

    m = build(settings, items, seed)
    tol = settings.recall_tolerance
    truth = exact_truth(m.vectors, m.queries, 10)

    def row(found: list[np.ndarray], qps: float, build: dict, **what: Any) -> dict[str, Any]:
        keys = recall_keys(found, truth, m.vectors, m.queries, tol)
        recall = {
            "recall_at_10": keys["recall_at_10_ties"],
            "recall_at_10_strict": keys["recall_at_10"],
        }
        return what | recall | {"qps": round(qps, 1)} | build

    rows = scann_variant_rows(m.vectors, m.queries, row)
    rows += projected_rows(m.vectors, m.queries, project, row)
    rows += hnsw_rows(m.vectors, m.queries, row)
    return {
        "benchmark": "index-1m-variants",
        "items": len(m.vectors),
        "dim": int(m.vectors.shape[1]),
        "source": m.meta["source"],
        "set": m.meta | {"cache": str(m.path)},
        "vectors_mib": round(m.vectors.nbytes / 2**20, 1),
        "rows": rows,
        "summary": fastest_at(rows),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    from lookalike.config import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", type=int, default=128, help="PCA dims of the projected rows")
    args = parser.parse_args()
    out = run(get_settings(), args.items, args.seed, args.project)
    path = REPO / "bench" / "results" / "index-1m-variants.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["summary"], indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
