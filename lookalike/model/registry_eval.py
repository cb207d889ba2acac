"""Evaluate a REGISTERED encoder version (by alias or number) with the shared evaluation."""

from __future__ import annotations

from typing import Any

from lookalike.catalog.table import resolve_version
from lookalike.config import Settings
from lookalike.model.data import load_split
from lookalike.model.evaluate import raw_pixel_embeddings, retrieval_metrics


def resolve_model_version(name: str, model: str) -> Any:
    """A model version from an alias (``challenger``) or a version number (``3``)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if model.isdigit():
        return client.get_model_version(name, model)
    return client.get_model_version_by_alias(name, model)


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

    from lookalike.model import tracking

    tracking.setup_mlflow(settings)
    mv = resolve_model_version(settings.encoder_model_name, model)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.encoder_model_name}/{mv.version}")
    meta = pyfunc.metadata.metadata or {}
    size, channels = int(meta["input_size"]), int(meta["channels"])
    table = settings.catalog_path
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
