"""Synthetic data for the index and service benchmarks: clustered unit vectors (a seeded
Gaussian mixture, clustered like catalogue embeddings), and a synthetic bundle of them in a
home of its own, registered and published as a real one is (``python -m bench.serving
--synthetic-items``)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np


def clustered_vectors(
    n: int, d: int = 128, queries: int = 0, seed: int = 0, centres: int = 2000, spread: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n unit vectors from a seeded Gaussian mixture (``centres`` N(0, 1) centres, N(0,
    ``spread``) noise per dimension), and ``queries`` noisy copies of random members: clustered
    like catalogue embeddings, not uniform noise (where no index can beat brute force).
    Returns (vectors, their centre, queries, the centre of each query's source)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    labels = np.empty(n, dtype=np.int32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        labels[start : start + m] = rng.integers(0, centres, m)
        x[start : start + m] = means[labels[start : start + m]] + spread * rng.normal(
            size=(m, d)
        ).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pick = rng.choice(n, queries, replace=False)
    q = x[pick] + 0.05 * rng.normal(size=(queries, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, labels, q, labels[pick]


def use_home(home: Path) -> Any:
    """Point this process, and the service and CLI it starts, at ``home`` alone (its own
    store, MLflow registry and caches): LOOKALIKE_HOME's bundles, index versions and aliases
    are never touched by the synthetic run."""
    from lookalike.config import get_settings

    for name in ("LOOKALIKE_STORE_URI", "LOOKALIKE_LAKE_URI", "LOOKALIKE_MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)
    os.environ["LOOKALIKE_HOME"] = str(home)
    get_settings.cache_clear()
    return get_settings()


def synthetic_id(row: int) -> str:
    """Zero-padded, so sorted ids are row order (the library keeps items sorted by id)."""
    return f"syn-{row:07d}"


def register_stub_encoder(settings: Any, dim: int) -> Any:
    """An untrained encoder of the default architecture (28x28 grey in, ``dim`` out), logged
    and registered as a trained one is: the synthetic home has no catalogue to train on,
    by-id queries never call it, and the service still loads it (its memory is in the RSS)."""
    from lookalike.similarity.config import TrainConfig
    from lookalike.similarity.model import build_encoder

    # the embedding alone (no conv features): the synthetic vectors have ``dim`` dimensions
    cfg = TrainConfig(
        input_size=28, channels=1, embedding_size=dim, augment=False, conv_features_weight=0.0
    )
    return register_encoder(settings, build_encoder(cfg), cfg, "bench-synthetic-encoder")


def register_encoder(
    settings: Any, model: Any, cfg: Any, run_name: str, alias: str = "challenger"
) -> Any:
    """Log the Keras ``model`` (trained with ``cfg``) as a pyfunc encoder in a run of
    ``settings``' own MLflow, register it under ``alias`` and return its ``EncoderRef``."""
    import mlflow

    from lookalike.registry.encoders import fetch_encoder
    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.registry.versions import register
    from lookalike.similarity import tracking

    setup_mlflow(settings)
    example = np.zeros((2, cfg.input_size, cfg.input_size, cfg.channels), np.uint8)
    with mlflow.start_run(run_name=run_name):
        info = tracking.log_encoder(model, cfg, example)
    version = register(settings, info.model_uri, settings.encoder_model_name, alias)
    return fetch_encoder(settings, version)


def synthetic_index_versions(settings: Any, encoder: Any, n: int, dim: int) -> dict[str, Any]:
    """n clustered unit vectors (``clustered_vectors``) as two index versions
    (``index_versions``): v1 is served first, v2 is the swap's."""
    import pyarrow as pa

    from lookalike.similarity import index as builder

    # ~500 items per centre at any n (2,000 centres at 1M: bench/index.py's set): a small
    # smoke-test set stays clustered instead of one or two items per centre
    vectors, labels, _, _ = clustered_vectors(n, dim, centres=min(2000, max(1, n // 500)))
    category = (labels % 10).astype(np.int32)
    items = pa.table(
        {
            "item_id": [synthetic_id(j) for j in range(n)],
            "category": category,
            "category_name": [f"synthetic-{c}" for c in category.tolist()],
            "content_hash": [""] * n,  # no photos: by-id queries only
        },
        schema=builder.ITEMS_SCHEMA,
    )
    return index_versions(settings, encoder, vectors, items, "bench/serving.py --synthetic-items")


def index_versions(
    settings: Any, encoder: Any, vectors: np.ndarray, items: Any, source: str
) -> dict[str, Any]:
    """``vectors`` (row-aligned with the ``items`` table) indexed with the library's own
    steps of a full build (``IndexParams.for_size``, ``build_searcher``, then the recall gate
    and the versioned write), published twice: v1 is served first, v2 is the swap's."""
    from lookalike.index import scann_index as sx
    from lookalike.similarity import index as builder

    n = len(vectors)
    params = sx.IndexParams.for_size(*vectors.shape)
    print(f"[bench] ScaNN over {n} vectors ({params})", flush=True)
    t = time.monotonic()
    searcher = sx.build_searcher(vectors, items.column("item_id").to_pylist(), params)
    out: dict[str, Any] = {
        "params": asdict(params),
        "build_seconds": round(time.monotonic() - t, 1),
    }
    manifest = {
        "kind": "full",
        "encoder": builder.encoder_manifest(encoder),
        "catalog_version": 0,
        "params": asdict(params),
        "base_index_version": None,
        "changed_since_rebalance": 0,
        "source": source,
    }
    out["versions"] = []
    for _ in range(2):
        t = time.monotonic()
        name, path, full = builder.publish_searcher(settings, searcher, vectors, items, manifest)
        out["versions"].append(
            {
                "index_version": name,
                "path": str(path),
                "recall_at_10": full["recall_at_10"],
                "recall_at_10_strict": full["recall_at_10_strict"],
                "search": full.get("search"),  # the tuning publish picked
                "check_and_write_seconds": round(time.monotonic() - t, 1),
            }
        )
    return out
