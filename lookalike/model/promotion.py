"""The promotion gate: encoder ``challenger`` vs ``champion``, then index, bundle, production.

Both versions are evaluated by the same function (``evaluate_registered``) on the same
catalogue version, beside the raw-pixel baseline (cosine of the pixels at the challenger's
input size). The challenger must beat that baseline (``promote_require_baseline``: an
encoder no better than pixels is not worth serving, even without a champion), and then wins
when there is no champion or when it beats the champion's metric by more than the margin. A
winner first gets its full index built and its bundle published; only then do ``champion``
(encoder) and ``production`` (bundle) move, so a failed index never replaces a working one.
Every decision is an MLflow run with all sets of metrics and its reason.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.catalog.table import resolve_version
from lookalike.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION_TAG = "lookalike.previous_champion"
EXPERIMENT = "lookalike-promotion"
RAW_PIXELS = "raw pixels"


class PromotionError(RuntimeError):
    """The gate cannot run (no challenger, unknown metric...); the message says why."""


@dataclass
class Decision:
    promote: bool
    reason: str
    metric: str
    challenger_version: str
    champion_version: str | None
    challenger_value: float
    champion_value: float | None
    margin: float
    baseline: str | None = None  # e.g. "raw pixels", "popularity"
    baseline_value: float | None = None


@dataclass
class PromotionResult:
    decision: Decision
    catalog_version: int
    challenger_metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    run_id: str
    baseline_metrics: dict[str, Any] | None = None
    index: dict[str, Any] | None = None
    bundle: dict[str, Any] | None = None
    moved: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PromotionResult:
        """Back from ``to_dict`` (an Airflow XCom between the gate and the promote task)."""
        return cls(**(d | {"decision": Decision(**d["decision"])}))


def decide(
    metric: str,
    challenger: tuple[str, dict[str, Any]],
    champion: tuple[str, dict[str, Any]] | None,
    margin: float,
    baseline: tuple[str, dict[str, Any]] | None = None,
) -> Decision:
    """Pure gate: refuse a challenger that does not beat the baseline (when one is given);
    else promote when there is no champion or challenger > champion + margin."""
    c_ver, c_metrics = challenger
    if metric not in c_metrics:
        raise PromotionError(f"promote_metric: {metric!r} is not an evaluation metric")
    c_val = float(c_metrics[metric])
    p_ver = None if champion is None else champion[0]
    p_val = None if champion is None else float(champion[1][metric])
    b_name = None if baseline is None else baseline[0]
    b_val = None if baseline is None else float(baseline[1][metric])

    def verdict(promote: bool, reason: str) -> Decision:
        return Decision(promote, reason, metric, c_ver, p_ver, c_val, p_val, margin, b_name, b_val)

    if b_val is not None and not c_val > b_val:
        return verdict(
            False, f"{metric} {c_val:.4f} does not beat the {b_name} baseline {b_val:.4f}"
        )
    beats = "" if b_val is None else f" (beats the {b_name} baseline {b_val:.4f})"
    if champion is None:
        return verdict(True, f"no champion yet{beats}")
    assert p_val is not None
    if c_ver == p_ver:
        return verdict(False, "challenger is already the champion")
    if c_val > p_val + margin:
        return verdict(
            True, f"{metric} {c_val:.4f} > champion {p_val:.4f} + margin {margin}{beats}"
        )
    return verdict(
        False, f"{metric} {c_val:.4f} does not beat champion {p_val:.4f} + margin {margin}"
    )


def _log(msg: str) -> None:
    print(f"[promote] {msg}", file=sys.stderr, flush=True)


def evaluate_gate(
    settings: Settings,
    *,
    challenger: str = CHALLENGER,
    margin: float | None = None,
    catalog_version: int | None = None,
) -> PromotionResult:
    """Evaluate challenger and champion the same way, decide, record the decision in MLflow.
    Moves nothing (``finalize`` does, after the index passed)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from lookalike.model import tracking
    from lookalike.model.registry_eval import evaluate_registered, resolve_model_version

    margin = settings.promote_margin if margin is None else margin
    version = resolve_version(settings.catalog_path, catalog_version)
    tracking.setup_mlflow(settings)
    name = settings.encoder_model_name
    try:
        chal_mv = resolve_model_version(name, challenger)
    except MlflowException as e:
        raise PromotionError(f"encoder {name!r} has no version or alias {challenger!r}") from e
    try:
        champ_mv = resolve_model_version(name, CHAMPION)
    except MlflowException:
        champ_mv = None

    def evaluate(v: str, with_baseline: bool = False) -> dict[str, Any]:
        _log(f"evaluating {name}/{v} on catalogue v{version}")
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
    _log(("PROMOTE: " if decision.promote else "keep champion: ") + decision.reason)

    tracking.setup_mlflow(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"gate-{name}-v{chal[0]}") as run:
        mlflow.log_params(
            {
                "encoder": name,
                "challenger_version": chal[0],
                "champion_version": champ[0] if champ else "none",
                "metric": decision.metric,
                "margin": margin,
                "catalog_version": version,
                "baseline": RAW_PIXELS if baseline else "none",
            }
        )

        def numbers(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
            return {f"{prefix}_{k}": float(v) for k, v in metrics.items() if isinstance(v, float)}

        mlflow.log_metrics(numbers("challenger", chal[1]))
        if champ is not None:
            mlflow.log_metrics(numbers("champion", champ[1]))
        if baseline is not None:
            mlflow.log_metrics(numbers("baseline_raw_pixels", baseline[1]))
        verdict = "promote" if decision.promote else "keep"
        mlflow.set_tags({"decision": verdict, "reason": decision.reason})
    return PromotionResult(
        decision=decision,
        catalog_version=version,
        challenger_metrics=chal[1],
        champion_metrics=champ[1] if champ else None,
        run_id=run.info.run_id,
        baseline_metrics=baseline[1] if baseline else None,
    )


def finalize(settings: Settings, gate: PromotionResult, index_path: Path) -> PromotionResult:
    """After the winner's full index passed its recall check: publish the bundle (moves
    ``production``), then move ``champion``. A failure leaves both aliases where they were."""
    from mlflow import MlflowClient

    from lookalike.bundle.registry import publish_bundle
    from lookalike.index.scann_index import read_manifest

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
        client.set_tag(gate.run_id, "decision", "promote-failed")
        client.set_tag(gate.run_id, "failure", str(e)[:500])
        _log(f"bundle for {name}/{chal} failed, nothing moved: {e}")
        raise
    gate.bundle = bundle.to_dict()
    champion = gate.decision.champion_version
    if champion is not None and champion != chal:
        client.set_model_version_tag(name, chal, PREVIOUS_CHAMPION_TAG, champion)
    client.set_registered_model_alias(name, CHAMPION, chal)
    gate.moved = {"champion": chal, "production": bundle.bundle_version}
    client.set_tag(gate.run_id, "index_version", manifest["index_version"])
    client.set_tag(gate.run_id, "bundle_version", bundle.bundle_version)
    _log(f"champion -> {name}/{chal}, production -> bundle v{bundle.bundle_version}")
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
    from lookalike.model.encoder_store import fetch_encoder

    gate = evaluate_gate(
        settings, challenger=challenger, margin=margin, catalog_version=catalog_version
    )
    if not gate.decision.promote:
        return gate
    encoder = fetch_encoder(settings, gate.decision.challenger_version)
    try:
        index = build_full(settings, encoder, spark=spark, catalog_version=gate.catalog_version)
    except Exception as e:
        MlflowClient().set_tag(gate.run_id, "decision", "promote-failed")
        MlflowClient().set_tag(gate.run_id, "failure", str(e)[:500])
        _log(f"full index for the challenger failed, nothing moved: {e}")
        raise
    gate.index = index.to_dict()
    assert index.path is not None
    return finalize(settings, gate, Path(index.path))
