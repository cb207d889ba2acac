"""``lookalike-shopper-model`` in MLflow: the pyfunc, registration as ``challenger``, and the
promotion that moves the alias the service follows (``Settings.shopper_alias``, default
``production``).

The gate is the registry's (``lookalike.registry.gate``), as for the encoder: challenger and
production are scored by the same evaluation on the same interactions version (the
challenger's); the challenger wins when there is no production version or it beats
production's metric by more than the margin. The decision and both sets of metrics are an
MLflow run in ``lookalike-shopper-promotion``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.config import Settings
from lookalike.registry.aliases import (
    CHALLENGER,
    INTERACTIONS_VERSION_TAG,
    PREVIOUS_PRODUCTION_TAG,
    SHOPPER_PROMOTION_EXPERIMENT,
)
from lookalike.registry.gate import Decision, GateResult, PromotionError
from lookalike.shopper.bundle import ShopperRecommender

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
        """Load (and verify) the bundle from the model's artifacts once, when MLflow loads it."""
        self.rec = ShopperRecommender(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads them
        """Rows with ``user_id`` -> that shopper's top-k items (``params``: ``k``,
        ``exclude_seen``, ``blend``), one output row per item."""
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

    from lookalike.registry.versions import register

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
    return register(settings, info.model_uri, settings.shopper_model_name, CHALLENGER, tags)


def _client(settings: Settings) -> Any:
    from lookalike.registry.mlflow_setup import client

    return client(settings, settings.shopper_experiment)


def version_by(settings: Settings, ref: str) -> Any | None:
    """A version of the shopper model by alias or number, or None."""
    from lookalike.registry.versions import find_version

    return find_version(settings.shopper_model_name, ref, client=_client(settings))


def load_version(settings: Settings, version: str) -> ShopperRecommender:
    """Download version ``version`` (once, into the cache) and load its bundle."""
    from lookalike.registry.cache import load_registered

    rec: ShopperRecommender = load_registered(settings, settings.shopper_model_name, version)
    return rec


@dataclass(kw_only=True)
class ShopperPromotion(GateResult):
    """The shopper gate's result: the gate's, plus the data it was decided on and the version
    the served alias pointed to before. ``to_dict`` is the command's JSON (flat)."""

    interactions_version: int | None
    production_before: str | None

    @property
    def production(self) -> str | None:
        """The version the served alias points to after the gate."""
        return next(iter(self.moved.values()), None) or self.production_before

    def to_dict(self) -> dict[str, Any]:
        """The gate's result as the command's flat JSON."""
        d = self.decision
        return {
            "promote": d.promote,
            "reason": d.reason,
            "metric": d.metric,
            "challenger_version": d.challenger_version,
            "production_before": self.production_before,
            "production": self.production,
            "challenger_metrics": self.challenger_metrics,
            "production_metrics": self.champion_metrics,
            "baseline_metrics": self.baseline_metrics,
            "interactions_version": self.interactions_version,
            "run_id": self.run_id,
        }


def promote(
    settings: Settings, *, challenger: str = CHALLENGER, margin: float | None = None
) -> ShopperPromotion:
    """Gate challenger vs production on the challenger's interactions version; move the served
    alias (``Settings.shopper_alias``) when it wins. Returns the decision with both sets of
    metrics (``to_dict()``: the JSON the command prints)."""
    from lookalike.registry.gate import decide, move_alias
    from lookalike.shopper.data import prepare
    from lookalike.shopper.evaluate import popularity_scorer, rank_metrics
    from lookalike.shopper.interactions import read_interactions

    margin = settings.shopper_promote_margin if margin is None else margin
    client = _client(settings)
    name, alias = settings.shopper_model_name, settings.shopper_alias
    chal = version_by(settings, challenger)
    if chal is None:
        raise PromotionError(f"{name!r} has no version or alias {challenger!r}: train first")
    prod = version_by(settings, alias)
    raw = (chal.tags or {}).get(INTERACTIONS_VERSION_TAG, "")
    data_version = int(raw) if raw.isdigit() else None
    chal_rec = _load_challenger(settings, str(chal.version), challenger)
    split = prepare(read_interactions(settings.interactions_uri, data_version), chal_rec.item_ids)

    def evaluate(rec: ShopperRecommender) -> dict[str, Any]:
        return rank_metrics(rec.scorer_for(split), split)

    chal_metrics = evaluate(chal_rec)
    champion = _production_metrics(settings, prod, str(chal.version), chal_metrics, evaluate)
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
    previous = str(prod.version) if prod is not None else None
    result = ShopperPromotion(
        decision=decision,
        run_id=_record(
            settings, decision, (chal, prod), margin, data_version, chal_metrics, champion, baseline
        ),
        challenger_metrics=chal_metrics,
        champion_metrics=champion[1] if champion else None,
        baseline_metrics=baseline[1] if baseline else None,
        interactions_version=data_version,
        production_before=previous,
    )
    if decision.promote:
        version = str(chal.version)
        move_alias(
            client, name, alias, version, previous=previous, previous_tag=PREVIOUS_PRODUCTION_TAG
        )
        result.moved = {alias: version}
    return result


def _load_challenger(settings: Settings, version: str, challenger: str) -> ShopperRecommender:
    """The challenger's bundle; one that does not load is refused (PromotionError): a broken
    version never reaches production."""
    try:
        return load_version(settings, version)
    except Exception as e:
        raise PromotionError(
            f"{settings.shopper_model_name} v{version} ({challenger}) does not load, "
            f"{settings.shopper_alias} unchanged: {type(e).__name__}: {e}"
        ) from None


def _production_metrics(
    settings: Settings,
    prod: Any | None,
    challenger_version: str,
    challenger_metrics: dict[str, Any],
    evaluate: Callable[[ShopperRecommender], dict[str, Any]],
) -> tuple[str, dict[str, Any]] | None:
    """(production version, its metrics) for the gate; None without a production version or
    when it does not load (anything that loads is better than a broken production)."""
    if prod is None:
        return None
    if str(prod.version) == challenger_version:
        return (str(prod.version), challenger_metrics)
    try:
        return (str(prod.version), evaluate(load_version(settings, str(prod.version))))
    except Exception as e:
        log.warning(
            "%s v%s does not load, gating without it: %s", settings.shopper_alias, prod.version, e
        )
        return None


def _record(
    settings: Settings,
    decision: Decision,
    versions: tuple[Any, Any | None],
    margin: float,
    data_version: int | None,
    challenger_metrics: dict[str, Any],
    champion: tuple[str, dict[str, Any]] | None,
    baseline: tuple[str, dict[str, Any]] | None,
) -> str:
    """The decision as a run in ``lookalike-shopper-promotion`` (parameters and every set of
    metrics); returns its run id. ``versions``: the challenger's and production's registry
    versions (production may be None)."""
    from lookalike.registry.gate import record_decision

    name = settings.shopper_model_name
    chal, prod = versions
    return record_decision(
        settings,
        experiment=SHOPPER_PROMOTION_EXPERIMENT,
        model_name=name,
        decision=decision,
        params={
            "model": name,
            "challenger_version": chal.version,
            "production_version": prod.version if prod is not None else "none",
            "metric": decision.metric,
            "margin": margin,
            "interactions_version": data_version if data_version is not None else "latest",
            "baseline": baseline[0] if baseline else "none",
        },
        metrics={
            "challenger": challenger_metrics,
            "production": champion[1] if champion else None,
            "baseline_popularity": baseline[1] if baseline else None,
        },
    )
