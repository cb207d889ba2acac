"""``lookalike-shopper-model`` in MLflow: the pyfunc, registration as ``challenger``, and the
promotion gate that moves ``production`` (the alias the service follows).

The gate works like the encoder's: challenger and production are scored by the same
evaluation on the same interactions version (the challenger's); the challenger wins when there
is no production version or it beats production's metric by more than the margin. The
decision and both sets of metrics are an MLflow run in ``lookalike-shopper-promotion``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lookalike.config import Settings
from lookalike.model.promotion import PromotionError, decide
from lookalike.shopper.recommender import ShopperRecommender

CHALLENGER = "challenger"
PRODUCTION = "production"
PREVIOUS_TAG = "lookalike.previous_production"
VERSION_TAG = "lookalike.interactions_version"
PROMOTION_EXPERIMENT = "lookalike-shopper-promotion"
log = logging.getLogger("lookalike.shopper")
DEFAULT_K = 10
OUTPUT_COLUMNS = ["query", "rank", "user_id", "item_id", "category", "score", "mode"]

try:  # keep this module importable without mlflow for light unit tests
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover
    _PythonModel = object  # type: ignore[assignment,misc]


class ShopperModel(_PythonModel):  # type: ignore[misc,valid-type]
    """pyfunc: rows with ``user_id`` -> that shopper's top-k items (fallback when unknown)."""

    def load_context(self, context: Any) -> None:
        self.rec = ShopperRecommender(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads them
        import pandas as pd

        params = params or {}
        k = int(params.get("k", DEFAULT_K))
        exclude_seen = bool(params.get("exclude_seen", True))
        blend = float(params.get("blend", 0.0))
        rows = []
        for q, user in enumerate(pd.DataFrame(model_input)["user_id"].astype(str).tolist()):
            hits, mode = self.rec.recommend(user, k, exclude_seen=exclude_seen, blend=blend)
            for rank, h in enumerate(hits, start=1):
                rows.append([q, rank, user, h.item_id, h.category, h.score, mode])
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "user_id")]),
        outputs=Schema(
            [
                ColSpec("long", "query"),
                ColSpec("long", "rank"),
                ColSpec("string", "user_id"),
                ColSpec("string", "item_id"),
                ColSpec("long", "category"),
                ColSpec("double", "score"),
                ColSpec("string", "mode"),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("k", "long", DEFAULT_K),
                ParamSpec("exclude_seen", "boolean", True),
                ParamSpec("blend", "double", 0.0),
            ]
        ),
    )


def log_and_register(settings: Settings, bundle_dir: Path, tags: dict[str, str]) -> str:
    """Inside an active run: load + check the bundle, log it, register it as ``challenger``."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    rec = ShopperRecommender(bundle_dir)  # refuse a broken bundle before logging it
    example = pd.DataFrame({"user_id": [rec.user_ids[0] if rec.user_ids else "someone"]})
    info = mlflow.pyfunc.log_model(
        name="shopper",
        python_model=ShopperModel(),
        artifacts={"bundle": str(bundle_dir)},
        signature=_signature(),
        input_example=example,
        pip_requirements=[],  # the deployment's own environment (requirements.lock)
    )
    name = settings.shopper_model_name
    version = str(mlflow.register_model(info.model_uri, name, tags=tags).version)
    MlflowClient().set_registered_model_alias(name, CHALLENGER, version)
    return version


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    from lookalike.model import tracking

    tracking.setup_mlflow(settings, settings.shopper_experiment)
    return MlflowClient()


def version_by(settings: Settings, ref: str) -> Any | None:
    """A version of the shopper model by alias or number, or None."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    name = settings.shopper_model_name
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        return None


def load_version(settings: Settings, version: str) -> ShopperRecommender:
    """Download version ``version`` (once, into the cache) and load its bundle."""
    from lookalike.bundle.registry import load_registered

    rec: ShopperRecommender = load_registered(settings, settings.shopper_model_name, version)
    return rec


def promote(
    settings: Settings, *, challenger: str = CHALLENGER, margin: float | None = None
) -> dict[str, Any]:
    """Gate challenger vs production on the challenger's interactions version; move
    ``production`` when it wins. Returns the decision with both sets of metrics."""
    import mlflow

    from lookalike.model import tracking
    from lookalike.shopper.data import prepare
    from lookalike.shopper.evaluate import popularity_scorer, rank_metrics
    from lookalike.shopper.interactions import read_interactions

    margin = settings.shopper_promote_margin if margin is None else margin
    client = _client(settings)
    name = settings.shopper_model_name
    chal = version_by(settings, challenger)
    if chal is None:
        raise PromotionError(f"{name!r} has no version or alias {challenger!r}: train first")
    prod = version_by(settings, PRODUCTION)
    raw = (chal.tags or {}).get(VERSION_TAG, "")
    data_version = int(raw) if raw.isdigit() else None
    try:
        chal_rec = load_version(settings, str(chal.version))
    except Exception as e:  # a broken version never reaches production
        raise PromotionError(
            f"{name} v{chal.version} ({challenger}) does not load, production unchanged: "
            f"{type(e).__name__}: {e}"
        ) from None
    split = prepare(read_interactions(settings.interactions_path, data_version), chal_rec.item_ids)

    def evaluate(rec: ShopperRecommender) -> dict[str, Any]:
        return rank_metrics(rec.scorer_for(split), split)

    chal_metrics = evaluate(chal_rec)
    champion = None
    if prod is not None:
        if str(prod.version) == str(chal.version):
            champion = (str(prod.version), chal_metrics)
        else:
            try:
                champion = (str(prod.version), evaluate(load_version(settings, str(prod.version))))
            except Exception as e:  # production itself broken: anything that loads is better
                log.warning("production v%s does not load, gating without it: %s", prod.version, e)
    baseline = None
    if settings.promote_require_baseline:  # a model no better than best-sellers is not served
        baseline = ("popularity", rank_metrics(popularity_scorer(split), split))
    decision = decide(
        settings.shopper_promote_metric,
        (str(chal.version), chal_metrics),
        champion,
        margin,
        baseline,
    )
    log.info("shopper gate: %s", decision.reason)
    tracking.setup_mlflow(settings, PROMOTION_EXPERIMENT)
    with mlflow.start_run(run_name=f"gate-{name}-v{chal.version}") as run:
        mlflow.log_params(
            {
                "model": name,
                "challenger_version": chal.version,
                "production_version": prod.version if prod is not None else "none",
                "metric": decision.metric,
                "margin": margin,
                "interactions_version": data_version if data_version is not None else "latest",
                "baseline": baseline[0] if baseline else "none",
            }
        )
        mlflow.log_metrics({f"challenger_{k}": float(v) for k, v in chal_metrics.items()})
        if champion is not None:
            mlflow.log_metrics({f"production_{k}": float(v) for k, v in champion[1].items()})
        if baseline is not None:
            mlflow.log_metrics(
                {f"baseline_popularity_{k}": float(v) for k, v in baseline[1].items()}
            )
        mlflow.set_tags(
            {"decision": "promote" if decision.promote else "keep", "reason": decision.reason}
        )
    moved = False
    if decision.promote:
        if prod is not None:
            client.set_model_version_tag(name, str(chal.version), PREVIOUS_TAG, str(prod.version))
        client.set_registered_model_alias(name, PRODUCTION, str(chal.version))
        moved = True
    return {
        "promote": decision.promote,
        "reason": decision.reason,
        "metric": decision.metric,
        "challenger_version": str(chal.version),
        "production_before": str(prod.version) if prod is not None else None,
        "production": str(chal.version) if moved else (str(prod.version) if prod else None),
        "challenger_metrics": chal_metrics,
        "production_metrics": champion[1] if champion else None,
        "baseline_metrics": baseline[1] if baseline else None,
        "interactions_version": data_version,
        "run_id": run.info.run_id,
    }
