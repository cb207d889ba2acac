"""One promotion path for every registered model (the encoder and the shopper model).

Two steps, the same for both products, called from each product's ``promotion`` module:

1. ``decide_and_record``: the gate (``gate.decide``) on the challenger's and champion's scores
   and an optional baseline, recorded as an MLflow run (``gate.record_decision``).
2. ``put_in_place``: for a winner, the product's preparation (the encoder: bring its index up
   to date and register its bundle; the shopper model: nothing), then ``move_aliases`` under a
   writer lease (``lookalike.locks``): every alias or none. Each version remembers the one its
   alias replaces (a rollback's target); aliases already moved are put back when a later one
   fails. Any failure marks the gate run ``promote-failed`` with the reason and re-raises.

What differs between the products is data (names, leases, tags, metrics), not the path: a rule
added here (an audit tag, another crash point) holds for both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from lookalike import locks
from lookalike.config import Settings
from lookalike.faults import crash_point
from lookalike.registry.aliases import CHAMPION
from lookalike.registry.gate import (
    Decision,
    Scored,
    decide,
    mark_failed,
    move_alias,
    record_decision,
)

log = logging.getLogger(__name__)


def decide_and_record(
    settings: Settings,
    *,
    experiment: str,
    model_name: str,
    metric: str,
    margin: float,
    challenger: Scored,
    champion: Scored | None,
    baseline: Scored | None = None,
    params: dict[str, Any],
    champion_label: str = CHAMPION,
) -> tuple[Decision, str]:
    """Decide, then record the decision as a run of ``experiment``; returns it and the run id.

    The run's metrics are ``challenger_*``, ``<champion_label>_*`` and ``baseline_<name>_*``
    (spaces of the baseline's name as underscores: ``raw pixels`` -> ``baseline_raw_pixels``),
    so every product's runs read the same way whatever it calls its champion."""
    decision = decide(metric, challenger, champion, margin, baseline)
    metrics: dict[str, dict[str, Any] | None] = {
        "challenger": challenger[1],
        champion_label: champion[1] if champion else None,
    }
    if baseline is not None:
        metrics["baseline_" + baseline[0].replace(" ", "_")] = baseline[1]
    run_id = record_decision(
        settings,
        experiment=experiment,
        model_name=model_name,
        decision=decision,
        params=params,
        metrics=metrics,
    )
    return decision, run_id


@dataclass(frozen=True)
class AliasMove:
    """Point ``alias`` of registered model ``name`` at ``version``; the version first remembers
    the one the alias pointed to under ``previous_tag`` (what a rollback returns to).

    ``mover``: the product's own move when moving this alias has rules of its own (the served
    bundle never goes to an older index than it serves); it tags the version itself and returns
    the version the alias pointed to before."""

    name: str
    alias: str
    version: str
    previous_tag: str
    mover: Callable[[], str | None] | None = None


def move_aliases(client: Any, moves: Sequence[AliasMove]) -> list[str | None]:
    """Move every alias in order, or none: when one fails, those already moved are put back
    (deleted when they pointed nowhere) and the failure re-raised. Returns, per move, the
    version its alias pointed to before. The caller holds the movers' lease."""
    done: list[tuple[AliasMove, str | None]] = []
    try:
        for m in moves:
            done.append((m, _move(client, m)))
            crash_point(f"promotion.{m.alias}_moved")
    except Exception:
        for m, previous in reversed(done):
            put_back(client, m.name, m.alias, previous)
        raise
    return [previous for _, previous in done]


def _move(client: Any, m: AliasMove) -> str | None:
    """One move (``m.mover``, or ``move_alias`` with the version the alias points to now as
    the previous one); returns that previous version."""
    from lookalike.registry.versions import find_version

    if m.mover is not None:
        return m.mover()
    current = find_version(m.name, m.alias, client=client)
    previous = str(current.version) if current is not None else None
    move_alias(client, m.name, m.alias, m.version, previous=previous, previous_tag=m.previous_tag)
    return previous


def put_back(client: Any, name: str, alias: str, version: str | None) -> None:
    """``alias`` of ``name`` back where it was (removed when it pointed nowhere). A put-back
    that fails is logged, not raised: the caller re-raises the failure that caused it."""
    try:
        if version is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, version)
    except Exception:
        log.exception(f"{alias} of {name} could not be put back to {version or 'nothing'}")
        return
    log.info(f"{alias} of {name} put back to {version or 'nothing'}")


def put_in_place(
    settings: Settings,
    client: Any,
    run_id: str,
    *,
    purpose: str,
    prepare: Callable[[], Sequence[AliasMove]],
    lease: str,
    hold: str | None = None,
) -> list[str | None]:
    """Put a gate's winner in place: ``prepare()`` (the product's steps before any alias moves;
    it returns the moves, whose versions may only exist once it ran, e.g. a bundle version),
    then ``move_aliases`` holding the writer lease ``lease``. ``hold``: a lease kept from before
    the preparation until the aliases moved (the encoder's index lease: no refresh may publish
    an index in between). Any failure marks the gate run ``run_id`` ``promote-failed`` with the
    reason and re-raises; the aliases are then where they were. Returns ``move_aliases``'."""
    try:
        held = nullcontext() if hold is None else locks.writer_lease(settings, hold, purpose)
        with held:
            moves = prepare()
            with locks.writer_lease(settings, lease, purpose):
                return move_aliases(client, moves)
    except Exception as e:
        mark_failed(client, run_id, e)
        log.info(f"{purpose} failed, nothing moved: {e}")
        raise
