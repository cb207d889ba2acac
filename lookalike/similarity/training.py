"""One training run end to end: data at a recorded catalogue version -> train (in-process or
Horovod on Spark) -> evaluate -> MLflow (params, lineage, metrics, artifacts, model) ->
register as ``lookalike-encoder`` with alias ``challenger``."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.catalog.table import resolve_version
from lookalike.config import Settings, get_settings
from lookalike.similarity.config import DataRef, TrainConfig
from lookalike.similarity.data import ImageSet, fit_to_catalog, load_split, load_training_items
from lookalike.similarity.evaluate import raw_pixel_embeddings, retrieval_metrics

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced: its MLflow run, the registered version, the metrics beside
    the raw-pixel baseline, and the configuration as trained."""

    run_id: str
    model_version: str | None
    catalog_version: int
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    unseen: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)  # as trained (input shape resolved)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the command's output, a job's summary file)."""
        return asdict(self)


def evaluate_embeddings(
    embed_fn: Any, index: ImageSet, queries: ImageSet
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Metrics of queries (test) searched in index (train), with both embeddings."""
    q, i = embed_fn(queries.x), embed_fn(index.x)
    names = index.category_names | queries.category_names
    return retrieval_metrics(q, queries.y, i, index.y, category_names=names), q, i


def _flat(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    out = {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    for name, v in metrics.get("per_category_precision_at_1", {}).items():
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)
        out[f"{prefix}p_at_1_{safe}"] = float(v)
    return out


def _artifacts(
    out: Path,
    model_embed: np.ndarray,
    index_embed: np.ndarray,
    queries: ImageSet,
    index: ImageSet,
    history: dict[str, list[float]],
) -> None:
    from lookalike.similarity import plots

    names = index.category_names | queries.category_names
    rng = np.random.default_rng(0)
    pick = rng.choice(len(queries), size=min(8, len(queries)), replace=False)
    sims = model_embed[pick] @ index_embed.T
    top = np.argsort(-sims, axis=1)[:, : min(6, len(index))]
    plots.neighbour_grid(
        out / "neighbours.png", queries.x[pick], queries.y[pick], index.x[top], index.y[top], names
    )
    sample = rng.choice(len(queries), size=min(3000, len(queries)), replace=False)
    plots.projection(out / "projection.png", model_embed[sample], queries.y[sample], names)
    if history:
        plots.loss_curve(out / "loss.png", history)


def run_training(
    cfg: TrainConfig,
    *,
    settings: Settings | None = None,
    catalog_version: int | None = None,
    num_proc: int | None = None,
    spark: SparkSession | None = None,
    register_model: bool = True,
    run_name: str | None = None,
    eval_limit: int | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train, evaluate and log one encoder. ``num_proc`` set = Horovod on Spark."""
    import mlflow

    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.similarity import tracking
    from lookalike.similarity.model import embed

    settings = settings or get_settings()
    table = settings.catalog_uri
    version = resolve_version(table, catalog_version)
    cfg, ref, train, test = _load_data(cfg, table, version, eval_limit)

    setup_mlflow(settings)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(cfg.to_params() | {"num_proc": num_proc or 0, "train_items": len(train)})
        tracking.log_dataset(ref)
        t0 = time.monotonic()
        model, history = _train(
            cfg, ref, train, settings, run.info.run_id, num_proc, spark, callbacks
        )
        train_seconds = round(time.monotonic() - t0, 1)
        mlflow.log_metric("train_seconds", train_seconds)

        metrics, q_emb, i_emb = evaluate_embeddings(lambda x: embed(model, x), train, test)
        baseline, _, _ = evaluate_embeddings(raw_pixel_embeddings, train, test)
        mlflow.log_metrics(_flat("", metrics) | _flat("baseline_raw_pixels_", baseline))
        mlflow.log_dict(metrics, "evaluation/metrics.json")
        unseen = _evaluate_unseen(cfg, table, version, eval_limit, model)

        with tempfile.TemporaryDirectory() as tmp:
            _artifacts(Path(tmp), q_emb, i_emb, test, train, history)
            mlflow.log_artifacts(tmp, "evaluation")

        model_version = None
        if register_model:
            model_version = _register(settings, cfg, model, train, version, run.info.run_id)
    return TrainResult(
        run.info.run_id,
        model_version,
        version,
        metrics,
        baseline,
        unseen,
        train_seconds,
        cfg.as_dict(),
    )


def _load_data(
    cfg: TrainConfig, table: Path, version: int, eval_limit: int | None
) -> tuple[TrainConfig, DataRef, ImageSet, ImageSet]:
    """(config with input shape and schedule resolved from the catalogue when not given, the
    training data's lineage reference, training items (also the evaluation's index), test
    queries)."""
    if not (cfg.input_shape_known and cfg.schedule_known):
        cfg = fit_to_catalog(cfg, table, version)
        log.info(
            f"from the catalogue: {cfg.input_size} px, {cfg.channels} channel(s), "
            f"{cfg.epochs} epochs x {cfg.steps_per_epoch} steps"
        )
    ref = DataRef(
        str(table), version, {"split": "train", "exclude_categories": list(cfg.exclude_categories)}
    )
    size = dict(input_size=cfg.input_size, channels=cfg.channels)
    train = load_training_items(cfg, ref)  # also the evaluation's index
    test = load_split(
        table, version, "test", limit=eval_limit, exclude_categories=cfg.exclude_categories, **size
    )
    return cfg, ref, train, test


def _train(
    cfg: TrainConfig,
    ref: DataRef,
    train: ImageSet,
    settings: Settings,
    run_id: str,
    num_proc: int | None,
    spark: SparkSession | None,
    callbacks: Sequence[Any],
) -> tuple[Any, dict[str, list[float]]]:
    """(model, loss history): in process, or with Horovod on ``num_proc`` Spark tasks (each
    reads its shard of ``ref``; rank 0's weights come back)."""
    from lookalike.similarity import tracking
    from lookalike.similarity.model import encoder_from_weights, train_encoder
    from lookalike.training.progress import epoch_progress

    if num_proc:  # rank 0 logs its epochs (see ``distributed.rank_main``)
        from lookalike.similarity.distributed import horovod_train

        weights, history = horovod_train(spark, cfg, ref, num_proc, settings.tracking_uri, run_id)
        return encoder_from_weights(cfg, weights), history
    progress = epoch_progress(cfg.epochs)  # one line per epoch, with the seconds left
    return train_encoder(cfg, train, callbacks=[tracking.epoch_logger(), progress, *callbacks])


def _evaluate_unseen(
    cfg: TrainConfig, table: Path, version: int, eval_limit: int | None, model: Any
) -> dict[str, Any]:
    """With held-out categories (``exclude_categories``): the model and the raw-pixel
    baseline on those categories only, logged to the run. Otherwise empty."""
    import mlflow

    from lookalike.similarity.model import embed

    if not cfg.exclude_categories:
        return {}
    only = list(cfg.exclude_categories)
    size = dict(input_size=cfg.input_size, channels=cfg.channels)
    u_index = load_split(table, version, "train", only_categories=only, limit=eval_limit, **size)
    u_test = load_split(table, version, "test", only_categories=only, limit=eval_limit, **size)
    unseen = {
        "model": evaluate_embeddings(lambda x: embed(model, x), u_index, u_test)[0],
        "raw_pixels": evaluate_embeddings(raw_pixel_embeddings, u_index, u_test)[0],
    }
    mlflow.log_metrics(
        _flat("unseen_", unseen["model"])
        | _flat("unseen_baseline_raw_pixels_", unseen["raw_pixels"])
    )
    mlflow.log_dict(unseen, "evaluation/unseen.json")
    return unseen


def _register(
    settings: Settings, cfg: TrainConfig, model: Any, train: ImageSet, version: int, run_id: str
) -> str:
    """Log the encoder to the run and register it (alias ``challenger``), tagged with the
    catalogue version it was trained on; returns the model version."""
    import mlflow

    from lookalike.registry.versions import register
    from lookalike.similarity import tracking

    info = tracking.log_encoder(model, cfg, train.x[:2])
    model_version = register(
        settings,
        info.model_uri,
        settings.encoder_model_name,
        tags={"catalog.version": str(version), "run_id": run_id},
    )
    mlflow.set_tag("registered_version", model_version)
    return model_version
