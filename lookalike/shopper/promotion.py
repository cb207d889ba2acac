"""The shopper model's promotion: ``challenger`` vs the served alias (``Settings.shopper_alias``,
default ``production``), through the registry's promotion path, as the encoder's.

Challenger and production are scored by the same evaluation on the same interactions version
(the challenger's), beside the popularity baseline (``promote_require_baseline``: a model no
better than best-sellers is not served); the challenger wins when there is no production
version (or it does not load) or it beats production's metric by more than the margin. The
decision and every set of metrics are an MLflow run in ``lookalike-shopper-promotion``
(``decide_and_record``). A winner needs no preparation: its bundle was checked when it was
registered and loaded again here; the served alias moves under the shopper's own writer lease
(``locks.SHOPPER``) and remembers the version it replaces (``put_in_place``), and a failed
move marks the gate run ``promote-failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lookalike.config import Settings
from lookalike.registry.aliases import (
    CHALLENGER,
    INTERACTIONS_VERSION_TAG,
    PREVIOUS_PRODUCTION_TAG,
    PRODUCTION,
    SHOPPER_PROMOTION_EXPERIMENT,
)
from lookalike.registry.gate import GateResult, PromotionError, Scored
from lookalike.registry.promotion import AliasMove, decide_and_record, put_in_place
from lookalike.shopper.bundle import ShopperRecommender
from lookalike.shopper.registry import load_version, version_by

log = logging.getLogger("lookalike.shopper")
POPULARITY = "popularity"

__all__ = ["PromotionError", "ShopperPromotion", "promote"]


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
    margin = settings.shopper_promote_margin if margin is None else margin
    name, alias = settings.shopper_model_name, settings.shopper_alias
    chal = version_by(settings, challenger)
    if chal is None:
        raise PromotionError(f"{name!r} has no version or alias {challenger!r}: train first")
    prod = version_by(settings, alias)
    raw = (chal.tags or {}).get(INTERACTIONS_VERSION_TAG, "")
    data_version = int(raw) if raw.isdigit() else None
    scored, champion, baseline = _score(settings, chal, prod, challenger, data_version)
    decision, run_id = decide_and_record(
        settings,
        experiment=SHOPPER_PROMOTION_EXPERIMENT,
        model_name=name,
        metric=settings.shopper_promote_metric,
        margin=margin,
        challenger=scored,
        champion=champion,
        baseline=baseline,
        params=_params(settings, (chal, prod), margin, data_version, baseline),
        champion_label=PRODUCTION,
    )
    log.info("shopper gate: %s", decision.reason)
    result = ShopperPromotion(
        decision=decision,
        run_id=run_id,
        challenger_metrics=scored[1],
        champion_metrics=champion[1] if champion else None,
        baseline_metrics=baseline[1] if baseline else None,
        interactions_version=data_version,
        production_before=str(prod.version) if prod is not None else None,
    )
    if decision.promote:
        _serve(settings, result)
    return result


def _score(
    settings: Settings, chal: Any, prod: Any | None, challenger: str, data_version: int | None
) -> tuple[Scored, Scored | None, Scored | None]:
    """(challenger, production, popularity baseline) scored by one evaluation on the
    challenger's interactions version; production None when there is none or it does not
    load, the baseline None when ``promote_require_baseline`` is off."""
    from lookalike.shopper.data import prepare
    from lookalike.shopper.evaluate import popularity_scorer, rank_metrics
    from lookalike.shopper.interactions import read_interactions

    chal_rec = _load_challenger(settings, str(chal.version), challenger)
    split = prepare(read_interactions(settings.interactions_uri, data_version), chal_rec.item_ids)

    def evaluate(rec: ShopperRecommender) -> dict[str, Any]:
        return rank_metrics(rec.scorer_for(split), split)

    chal_metrics = evaluate(chal_rec)
    champion = _production_metrics(settings, prod, str(chal.version), chal_metrics, evaluate)
    baseline = None
    if settings.promote_require_baseline:  # a model no better than best-sellers is not served
        baseline = (POPULARITY, rank_metrics(popularity_scorer(split), split))
    return (str(chal.version), chal_metrics), champion, baseline


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
) -> Scored | None:
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


def _params(
    settings: Settings,
    versions: tuple[Any, Any | None],
    margin: float,
    data_version: int | None,
    baseline: Scored | None,
) -> dict[str, Any]:
    """The gate run's parameters. ``versions``: the challenger's and production's registry
    versions (production may be None)."""
    chal, prod = versions
    return {
        "model": settings.shopper_model_name,
        "challenger_version": chal.version,
        "production_version": prod.version if prod is not None else "none",
        "metric": settings.shopper_promote_metric,
        "margin": margin,
        "interactions_version": data_version if data_version is not None else "latest",
        "baseline": baseline[0] if baseline else "none",
    }


def _serve(settings: Settings, result: ShopperPromotion) -> None:
    """The winner in place through the registry's path: no preparation, one alias, the
    shopper's lease; ``result.moved`` says what moved."""
    from lookalike import locks
    from lookalike.registry.mlflow_setup import registry_client

    name, alias = settings.shopper_model_name, settings.shopper_alias
    version = result.decision.challenger_version
    move = AliasMove(name, alias, version, PREVIOUS_PRODUCTION_TAG)
    put_in_place(
        settings,
        registry_client(settings),
        result.run_id,
        purpose=f"promote {name}/{version}",
        prepare=lambda: [move],
        lease=locks.SHOPPER,
    )
    result.moved = {alias: version}
