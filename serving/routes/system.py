"""Liveness, readiness, versions, Prometheus metrics and the admin reload."""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import get_live, get_shopper_state, get_state, not_deployed
from serving.errors import problems
from serving.schemas import (
    Health,
    Ready,
    ReloadResult,
    ShopperStatus,
    ShopperVersions,
    VersionReport,
    Versions,
)
from serving.state import Live, NotDeployed, NotReady, ServiceState

router = APIRouter(tags=["system"])
StateDep = Annotated[ServiceState, Depends(get_state)]
ShopperStateDep = Annotated[ServiceState, Depends(get_shopper_state)]


@router.get("/healthz", response_model=Health, responses=problems())
def healthz() -> Health:
    """The process is alive (says nothing about bundles)."""
    return Health(status="ok")


def shopper_status(state: ServiceState) -> ShopperStatus:
    """The shopper model's state as the user route sees it (one read of ``live``)."""
    try:
        return ShopperStatus(
            status="serving", versions=ShopperVersions(**state.current().versions())
        )
    except NotDeployed:
        return ShopperStatus(status="not deployed", reason=not_deployed(state))
    except NotReady as e:
        return ShopperStatus(status="not ready", reason=str(e))


@router.get(
    "/readyz",
    response_model=Ready,
    responses=problems() | {503: {"model": Ready, "description": "no bundle loaded yet"}},
)
def readyz(state: StateDep, shopper_state: ShopperStateDep) -> Ready | JSONResponse:
    """Ready when a similarity bundle is loaded; otherwise 503 and why. Also says whether a
    shopper model is loaded, not deployed (the user route answers 404: a similarity-only
    service is ready) or not ready (503 until it is)."""
    s = shopper_status(shopper_state)
    shopper = {"shopper": s.versions, "shopper_reason": s.reason, "shopper_status": s.status}
    try:
        live = state.current()
    except NotReady as e:
        body = Ready(ready=False, reason=str(e), **shopper)
        return JSONResponse(status_code=503, content=body.model_dump())
    return Ready(ready=True, versions=Versions(**live.versions()), **shopper)


@router.get(
    "/metrics",
    response_class=Response,
    responses=problems() | {200: {"content": {"text/plain": {}}}},
)
def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/version",
    response_model=VersionReport,
    responses=problems(503),
)
def version(
    live: Annotated[Live, Depends(get_live)], shopper_state: ShopperStateDep
) -> VersionReport:
    """Bundle, encoder, index and catalogue versions being served, and when they were loaded;
    the shopper model's versions, or that none is deployed (or not ready) and why."""
    return VersionReport(**live.versions(), shopper=shopper_status(shopper_state))


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResult,
    tags=["admin"],
    responses=problems(401, 403, 422),
)
def reload(
    similar_state: StateDep,
    shopper_state: ShopperStateDep,
    authorization: Annotated[str | None, Header()] = None,
    model: Annotated[
        Literal["similar", "shopper"], Query(description="which followed model")
    ] = "similar",
) -> ReloadResult:
    """Follow the alias now (also retries a version that failed before). Bearer token."""
    state = similar_state if model == "similar" else shopper_state
    expected = state.settings.serve_admin_token
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(
            status_code=401,
            detail="admin: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = authorization.split(" ", 1)[1].strip()
    if not expected:
        raise HTTPException(status_code=403, detail="admin: no token configured on this service")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail="admin: wrong token")
    outcome = state.reload(force=True)
    live = state.live
    return ReloadResult(
        action=outcome.action,
        version=outcome.version,
        reason=outcome.reason,
        seconds=outcome.seconds,
        live_version=live.bundle_version if live else None,
    )
