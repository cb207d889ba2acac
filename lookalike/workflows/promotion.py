"""The encoder promotion: ``challenger`` vs ``champion``, then index, bundle, production.

Both versions are evaluated by the same function (``evaluate_registered``) on the same
catalogue version, beside the raw-pixel baseline (cosine of the pixels at the challenger's
input size). The challenger must beat that baseline (``promote_require_baseline``: an
encoder no better than pixels is not worth serving, even without a champion), and then wins
when there is no champion or when it beats the champion's metric by more than the margin. A
winner first gets its full index built and its bundle published; only then do ``champion``
(encoder) and ``production`` (bundle; ``Settings.serve_alias``) move, so a failed index never
replaces a working one. Every decision is an MLflow run with all sets of metrics and its
reason. The gate itself (decide, record, move an alias) is the registry's, shared with the
shopper model (``lookalike.registry.gate``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.catalog.table import resolve_version
from lookalike.config import Settings
from lookalike.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    PROMOTION_EXPERIMENT,
)
from lookalike.registry.gate import Decision, GateResult, PromotionError, Scored

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXPERIMENT = PROMOTION_EXPERIMENT
RAW_PIXELS = "raw pixels"

__all__ = ["Decision", "PromotionError", "PromotionResult", "evaluate_gate", "finalize", "promote"]

#: ``PromotionResult.to_dict`` keys, in the order the command has always printed them.
_KEYS = (
    "decision",
    "catalog_version",
    "challenger_metrics",
    "champion_metrics",
    "run_id",
    "baseline_metrics",
    "index",
    "bundle",
    "moved",
)


@dataclass(kw_only=True)
class PromotionResult(GateResult):
    """The encoder gate's result, plus the catalogue version it was decided on and, for a
    winner, the index built and the bundle published."""

    catalog_version: int
    index: dict[str, Any] | None = None
    bundle: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values, keys in the order the command has always printed."""
        d = asdict(self)
        return {k: d[k] for k in _KEYS}


log = logging.getLogger(__name__)


def evaluate_gate(
    settings: Settings,
    *,
    challenger: str = CHALLENGER,
    margin: float | None = None,
    catalog_version: int | None = None,
) -> PromotionResult:
    """Evaluate challenger and champion the same way, decide, record the decision in MLflow.
    Moves nothing (``finalize`` does, after the index passed)."""
    from lookalike.model.registry_eval import evaluate_registered
    from lookalike.registry.gate import decide
    from lookalike.registry.mlflow_setup import setup_mlflow
    from lookalike.registry.versions import VersionNotFound, find_version, get_version

    margin = settings.promote_margin if margin is None else margin
    version = resolve_version(settings.catalog_uri, catalog_version)
    setup_mlflow(settings)
    name = settings.encoder_model_name
    try:
        chal_mv = get_version(name, challenger)
    except VersionNotFound as e:
        raise PromotionError(f"encoder {name!r} has no version or alias {challenger!r}") from e
    champ_mv = find_version(name, CHAMPION)

    def evaluate(v: str, with_baseline: bool = False) -> dict[str, Any]:
        log.info(f"evaluating {name}/{v} on catalogue v{version}")
        return evaluate_registered(
            settings,
            v,
            catalog_version=version,
            eval_limit=settings.promote_eval_limit,
            with_baseline=with_baseline,
        )

    chal_eval = evaluate(str(chal_mv.version), with_baseline=settings.promote_require_baseline)
    chal = (str(chal_mv.version), chal_eval["metrics"])
    baseline = None
    if settings.promote_require_baseline:
        baseline = (RAW_PIXELS, chal_eval["baseline"])
    champ = None
    if champ_mv is not None and str(champ_mv.version) != chal[0]:
        champ = (str(champ_mv.version), evaluate(str(champ_mv.version))["metrics"])
    elif champ_mv is not None:
        champ = chal
    decision = decide(settings.promote_metric, chal, champ, margin, baseline)
    log.info(("PROMOTE: " if decision.promote else "keep champion: ") + decision.reason)

    run_id = _record(settings, decision, chal, champ, baseline, margin, version)
    return PromotionResult(
        decision=decision,
        catalog_version=version,
        challenger_metrics=chal[1],
        champion_metrics=champ[1] if champ else None,
        run_id=run_id,
        baseline_metrics=baseline[1] if baseline else None,
    )


def _record(
    settings: Settings,
    decision: Decision,
    chal: Scored,
    champ: Scored | None,
    baseline: Scored | None,
    margin: float,
    catalog_version: int,
) -> str:
    """The decision as a run in the promotion experiment: parameters, the challenger's,
    champion's and raw-pixel baseline's metrics; returns the run id."""
    from lookalike.registry.gate import record_decision

    name = settings.encoder_model_name
    return record_decision(
        settings,
        experiment=EXPERIMENT,
        model_name=name,
        decision=decision,
        params={
            "encoder": name,
            "challenger_version": chal[0],
            "champion_version": champ[0] if champ else "none",
            "metric": decision.metric,
            "margin": margin,
            "catalog_version": catalog_version,
            "baseline": RAW_PIXELS if baseline else "none",
        },
        metrics={
            "challenger": chal[1],
            "champion": champ[1] if champ else None,
            "baseline_raw_pixels": baseline[1] if baseline else None,
        },
    )


def finalize(settings: Settings, gate: PromotionResult, index_path: Path) -> PromotionResult:
    """After the winner's full index passed its recall check: publish the bundle (moves
    ``production``), then move ``champion``. A failure leaves both aliases where they were."""
    from mlflow import MlflowClient

    from lookalike.bundle.registry import publish_bundle
    from lookalike.index.scann_index import read_manifest
    from lookalike.registry.gate import mark_failed, move_alias

    name = settings.encoder_model_name
    chal = gate.decision.challenger_version
    manifest = read_manifest(index_path)
    if str(manifest["encoder"]["version"]) != chal:
        raise PromotionError(
            f"index {index_path.name} holds encoder {manifest['encoder']['version']}, "
            f"the gate promoted {chal}"
        )
    client = MlflowClient()
    try:
        bundle = publish_bundle(settings, index_path)
    except Exception as e:
        mark_failed(client, gate.run_id, e)
        log.info(f"bundle for {name}/{chal} failed, nothing moved: {e}")
        raise
    gate.bundle = bundle.to_dict()
    move_alias(
        client,
        name,
        CHAMPION,
        chal,
        previous=gate.decision.champion_version,
        previous_tag=PREVIOUS_CHAMPION_TAG,
    )
    served = settings.serve_alias
    gate.moved = {CHAMPION: chal, served: bundle.bundle_version}
    client.set_tag(gate.run_id, "index_version", manifest["index_version"])
    client.set_tag(gate.run_id, "bundle_version", bundle.bundle_version)
    log.info(f"{CHAMPION} -> {name}/{chal}, {served} -> bundle v{bundle.bundle_version}")
    return gate


def promote(
    settings: Settings,
    *,
    challenger: str = CHALLENGER,
    margin: float | None = None,
    catalog_version: int | None = None,
    spark: SparkSession | None = None,
) -> PromotionResult:
    """Gate; for a winner build the full index (recall-checked), then ``finalize``."""
    from mlflow import MlflowClient

    from lookalike.index.builder import build_full
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.registry.gate import mark_failed

    gate = evaluate_gate(
        settings, challenger=challenger, margin=margin, catalog_version=catalog_version
    )
    if not gate.decision.promote:
        return gate
    encoder = fetch_encoder(settings, gate.decision.challenger_version)
    try:
        index = build_full(settings, encoder, spark=spark, catalog_version=gate.catalog_version)
    except Exception as e:
        mark_failed(MlflowClient(), gate.run_id, e)
        log.info(f"full index for the challenger failed, nothing moved: {e}")
        raise
    gate.index = index.to_dict()
    assert index.path is not None
    return finalize(settings, gate, Path(index.path))
