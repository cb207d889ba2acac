"""The promotion gate, one for every registered model (the encoder and the shopper model).

A gate run: ``decide`` (pure: the challenger must beat the baseline when one is given, then
the champion by more than the margin), record the decision as an MLflow run (parameters, every
set of metrics, ``decision`` and ``reason`` tags), and, for a winner, ``move_alias``: the alias
moves to the challenger, which first gets a tag naming the version it replaces (what a
rollback returns to). These are the pieces; ``lookalike.registry.promotion`` puts them
together into the one path both products promote through (decide and record, then prepare
and move every alias or none under a writer lease).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Self

from lookalike.config import Settings


class PromotionError(RuntimeError):
    """The gate cannot run (no challenger, unknown metric...); the message says why."""


@dataclass
class Decision:
    """A gate's verdict with the numbers behind it: recorded as the MLflow decision run and
    printed by the promotion commands."""

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


Scored = tuple[str, dict[str, Any]]  # (version or baseline name, metrics)


def decide(
    metric: str,
    challenger: Scored,
    champion: Scored | None,
    margin: float,
    baseline: Scored | None = None,
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


@dataclass(kw_only=True)
class GateResult:
    """One gate run: the decision, the metrics it compared, its MLflow run, what moved
    (alias -> version). Promotions extend it with what they add (index, bundle, data)."""

    decision: Decision
    run_id: str
    challenger_metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None = None
    baseline_metrics: dict[str, Any] | None = None
    moved: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the command's output, an Airflow XCom)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Back from ``to_dict`` (e.g. an Airflow XCom between two tasks)."""
        return cls(**(d | {"decision": Decision(**d["decision"])}))


def _numbers(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items() if isinstance(v, float)}


def record_decision(
    settings: Settings,
    *,
    experiment: str,
    model_name: str,
    decision: Decision,
    params: dict[str, Any],
    metrics: dict[str, dict[str, Any] | None],
) -> str:
    """The decision as an MLflow run ``gate-<model>-v<challenger>`` in ``experiment``:
    ``params``, every float of each set of ``metrics`` (prefix -> metrics; None skipped) and the
    ``decision`` (promote | keep) and ``reason`` tags. Returns the run id."""
    import mlflow

    from lookalike.registry.mlflow_setup import setup_mlflow

    setup_mlflow(settings, experiment)
    with mlflow.start_run(run_name=f"gate-{model_name}-v{decision.challenger_version}") as run:
        mlflow.log_params(params)
        for prefix, values in metrics.items():
            if values is not None:
                mlflow.log_metrics(_numbers(prefix, values))
        verdict = "promote" if decision.promote else "keep"
        mlflow.set_tags({"decision": verdict, "reason": decision.reason})
    return run.info.run_id


def mark_failed(client: Any, run_id: str, error: BaseException) -> None:
    """A winner that could not be put in place: the gate run says so, and why."""
    client.set_tag(run_id, "decision", "promote-failed")
    client.set_tag(run_id, "failure", str(error)[:500])


def move_alias(
    client: Any, name: str, alias: str, version: str, *, previous: str | None, previous_tag: str
) -> None:
    """Point ``alias`` of ``name`` at ``version``; the version first remembers the one the
    alias pointed to before (``previous_tag``), for a rollback."""
    if previous is not None and previous != version:
        client.set_model_version_tag(name, version, previous_tag, previous)
    client.set_registered_model_alias(name, alias, version)
