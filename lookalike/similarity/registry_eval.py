"""Evaluate a REGISTERED encoder version (by alias or number) with the shared evaluation."""

from __future__ import annotations

from typing import Any

from lookalike.catalog.table import resolve_version
from lookalike.config import Settings
from lookalike.similarity.data import load_split
from lookalike.similarity.evaluate import raw_pixel_embeddings, retrieval_metrics


def evaluate_registered(
    settings: Settings,
    model: str,
    *,
    catalog_version: int | None = None,
    eval_limit: int | None = None,
    with_baseline: bool = False,
) -> dict[str, Any]:
    """Metrics of a registered version; ``with_baseline`` adds the raw-pixel baseline on the
    same queries and index at the version's input size (what the promotion gate compares)."""
    import mlflow

    from lookalike.registry.mlflow_setup import registry_client, setup_mlflow
    from lookalike.registry.versions import get_version

    setup_mlflow(settings)  # the pyfunc load below reads the process's registry URI
    mv = get_version(settings.encoder_model_name, model, client=registry_client(settings))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.encoder_model_name}/{mv.version}")
    meta = pyfunc.metadata.metadata or {}
    size, channels = int(meta["input_size"]), int(meta["channels"])
    table = settings.catalog_uri
    version = resolve_version(table, catalog_version)
    index = load_split(table, version, "train", input_size=size, channels=channels)
    queries = load_split(
        table, version, "test", input_size=size, channels=channels, limit=eval_limit
    )
    names = index.category_names | queries.category_names
    metrics = retrieval_metrics(
        pyfunc.predict(queries.x),
        queries.y,
        pyfunc.predict(index.x),
        index.y,
        category_names=names,
    )
    out = {
        "model": settings.encoder_model_name,
        "version": str(mv.version),
        "catalog_version": version,
        "metrics": metrics,
    }
    if with_baseline:
        out["baseline"] = retrieval_metrics(
            raw_pixel_embeddings(queries.x),
            queries.y,
            raw_pixel_embeddings(index.x),
            index.y,
            category_names=names,
        )
    return out
