"""The encoder promotion: ``challenger`` vs ``champion``, then index, bundle, production.

Both versions are evaluated by the same function (``evaluate_registered``) on the same
catalogue version, beside the raw-pixel baseline (cosine of the pixels at the challenger's
input size). The challenger must beat that baseline (``promote_require_baseline``: an
encoder no better than pixels is not worth serving, even without a champion), and then wins
when there is no champion or when it beats the champion's metric by more than the margin. A
winner first gets its full index built, brought up to the latest catalogue version and its
bundle registered; only then do ``champion`` (encoder) and ``production`` (bundle;
``Settings.serve_alias``) move, together or not at all, so a failed index never replaces a
working one and a promotion never drops a product that is being served. Every decision is an
MLflow run with all sets of metrics and its reason. The path itself (decide and record; then
prepare and move the aliases all or nothing under a writer lease) is the registry's, the same
one the shopper model promotes through (``lookalike.registry.promotion``): this module says
what the encoder evaluates, prepares and moves.
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
    PREVIOUS_PRODUCTION_TAG,
    PROMOTION_EXPERIMENT,
)
from lookalike.registry.gate import Decision, GateResult, PromotionError, Scored, mark_failed
from lookalike.registry.promotion import AliasMove, decide_and_record, put_in_place

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lookalike.similarity.registry import PublishResult

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
    "catch_up",
)


@dataclass(kw_only=True)
class PromotionResult(GateResult):
    """The encoder gate's result, plus the catalogue version it was decided on and, for a
    winner, the index built and the bundle published."""

    catalog_version: int
    index: dict[str, Any] | None = None
    catch_up: dict[str, Any] | None = None  # the update that brought the index up to date
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
    from lookalike.registry.mlflow_setup import registry_client
    from lookalike.registry.versions import VersionNotFound, find_version, get_version

    margin = settings.promote_margin if margin is None else margin
    version = resolve_version(settings.catalog_uri, catalog_version)
    client = registry_client(settings)
    name = settings.encoder_model_name
    try:
        chal_mv = get_version(name, challenger, client=client)
    except VersionNotFound as e:
        raise PromotionError(f"encoder {name!r} has no version or alias {challenger!r}") from e
    champ_mv = find_version(name, CHAMPION, client=client)
    chal, champ, baseline = _score(settings, chal_mv, champ_mv, version)
    decision, run_id = decide_and_record(
        settings,
        experiment=EXPERIMENT,
        model_name=name,
        metric=settings.promote_metric,
        margin=margin,
        challenger=chal,
        champion=champ,
        baseline=baseline,
        params=_params(settings, chal, champ, baseline, margin, version),
    )
    log.info(("PROMOTE: " if decision.promote else "keep champion: ") + decision.reason)
    return PromotionResult(
        decision=decision,
        catalog_version=version,
        challenger_metrics=chal[1],
        champion_metrics=champ[1] if champ else None,
        run_id=run_id,
        baseline_metrics=baseline[1] if baseline else None,
    )


def _score(
    settings: Settings, chal_mv: Any, champ_mv: Any | None, version: int
) -> tuple[Scored, Scored | None, Scored | None]:
    """(challenger, champion, raw-pixel baseline) scored by one evaluation on catalogue
    ``version``; the champion None when there is none (the challenger's own scores when it is
    the champion already), the baseline None when ``promote_require_baseline`` is off."""
    from lookalike.similarity.registry_eval import evaluate_registered

    name = settings.encoder_model_name

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
    return chal, champ, baseline


def _params(
    settings: Settings,
    chal: Scored,
    champ: Scored | None,
    baseline: Scored | None,
    margin: float,
    catalog_version: int,
) -> dict[str, Any]:
    """The gate run's parameters: what was compared, on which metric and catalogue version."""
    return {
        "encoder": settings.encoder_model_name,
        "challenger_version": chal[0],
        "champion_version": champ[0] if champ else "none",
        "metric": settings.promote_metric,
        "margin": margin,
        "catalog_version": catalog_version,
        "baseline": RAW_PIXELS if baseline else "none",
    }


def finalize(settings: Settings, gate: PromotionResult, index_path: Path) -> PromotionResult:
    """After the winner's full index passed its recall check: the registry's promotion path
    (``put_in_place``) with the encoder's preparation (bring the index up to the latest
    catalogue version, register its bundle without moving anything) and two aliases to move,
    ``champion`` then ``production``, all or nothing.

    The index writers' lease is held from the catch-up until both moved, so no refresh writes
    an index in between; the index the service gets is never older than the catalogue it
    serves now (products that landed while the challenger trained stay served). A failure
    anywhere leaves both aliases where they were and marks the gate's run ``promote-failed``
    with the reason."""
    from lookalike import locks
    from lookalike.index.scann_index import read_manifest
    from lookalike.registry.mlflow_setup import registry_client

    chal = gate.decision.challenger_version
    manifest = read_manifest(index_path)
    if str(manifest["encoder"]["version"]) != chal:
        raise PromotionError(
            f"index {index_path.name} holds encoder {manifest['encoder']['version']}, "
            f"the gate promoted {chal}"
        )
    client = registry_client(settings)
    published: list[PublishResult] = []

    def prepare() -> list[AliasMove]:
        bundle = _publish(settings, _catch_up(settings, gate, index_path))
        published.append(bundle)
        return _moves(settings, chal, bundle)

    before = put_in_place(
        settings,
        client,
        gate.run_id,
        purpose=f"promote {settings.encoder_model_name}/{chal}",
        prepare=prepare,
        lease=locks.PRODUCTION,
        hold=locks.INDEXES,
    )
    _record_moved(settings, client, gate, published[0], before[1])
    return gate


def _catch_up(settings: Settings, gate: PromotionResult, index_path: Path) -> Path:
    """The winner's index brought up to the catalogue's latest version: an incremental update
    with the challenger's own encoder from the version the index was built at (the catalogue
    moves while a challenger trains: a nightly refresh may already serve newer products)."""
    from lookalike.catalog.table import table_version
    from lookalike.index.scann_index import read_manifest
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.index import update_index

    built_at = int(read_manifest(index_path)["catalog_version"])
    latest = table_version(settings.catalog_uri)
    if latest is None or latest <= built_at:
        return index_path
    log.info(f"catalogue moved from v{built_at} to v{latest} since the index was built")
    encoder = fetch_encoder(settings, gate.decision.challenger_version)
    update = update_index(settings, base=index_path, encoder=encoder)
    gate.catch_up = update.to_dict()
    return Path(update.path) if update.path else index_path


def _publish(settings: Settings, index_path: Path) -> PublishResult:
    """The winner's bundle registered, the served alias not moved yet (``_moves`` does)."""
    from lookalike.similarity.registry import publish_bundle

    return publish_bundle(settings, index_path, set_production=False)


def _moves(settings: Settings, chal: str, bundle: PublishResult) -> list[AliasMove]:
    """``champion`` (encoder) first, then the served alias (bundle) through ``serve_bundle``,
    which refuses an older index than the one served: if that fails, ``champion`` is put back."""
    from lookalike.similarity import registry as bundles

    def serve() -> str | None:
        return bundles.serve_bundle(settings, bundle.bundle_version, bundle.index_version)

    return [
        AliasMove(settings.encoder_model_name, CHAMPION, chal, PREVIOUS_CHAMPION_TAG),
        AliasMove(
            settings.recommender_model_name,
            settings.serve_alias,
            bundle.bundle_version,
            PREVIOUS_PRODUCTION_TAG,
            mover=serve,
        ),
    ]


def _record_moved(
    settings: Settings,
    client: Any,
    gate: PromotionResult,
    bundle: PublishResult,
    previous_production: str | None,
) -> None:
    """What moved, on the result (the command's JSON) and as tags of the gate's run."""
    name, chal = settings.encoder_model_name, gate.decision.challenger_version
    served = settings.serve_alias
    bundle.previous_production = previous_production
    bundle.production = True
    gate.bundle = bundle.to_dict()
    gate.moved = {CHAMPION: chal, served: bundle.bundle_version}
    client.set_tag(gate.run_id, "index_version", bundle.index_version)
    client.set_tag(gate.run_id, "bundle_version", bundle.bundle_version)
    log.info(f"{CHAMPION} -> {name}/{chal}, {served} -> bundle v{bundle.bundle_version}")


def promote(
    settings: Settings,
    *,
    challenger: str = CHALLENGER,
    margin: float | None = None,
    catalog_version: int | None = None,
    spark: SparkSession | None = None,
) -> PromotionResult:
    """Gate; for a winner build the full index (recall-checked), then ``finalize``."""
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.registry.mlflow_setup import registry_client
    from lookalike.similarity.index import build_full

    gate = evaluate_gate(
        settings, challenger=challenger, margin=margin, catalog_version=catalog_version
    )
    if not gate.decision.promote:
        return gate
    encoder = fetch_encoder(settings, gate.decision.challenger_version)
    try:
        index = build_full(settings, encoder, spark=spark, catalog_version=gate.catalog_version)
    except Exception as e:
        mark_failed(registry_client(settings), gate.run_id, e)
        log.info(f"full index for the challenger failed, nothing moved: {e}")
        raise
    gate.index = index.to_dict()
    assert index.path is not None
    return finalize(settings, gate, Path(index.path))
