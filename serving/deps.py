"""Request-scoped access to the service state (one place, so routes stay declarative).

The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hand-off per request that cost more than the by-id search itself."""

from __future__ import annotations

from fastapi import HTTPException, Request

from serving.state import Live, NotDeployed, NotReady, ServiceState

#: The 404 a shopper route sends when no shopper model is deployed: what to run to deploy one.
HOW_TO_DEPLOY = (
    "land interactions (`lookalike shopper simulate --ingest` or `lookalike shopper ingest`), "
    "then `lookalike shopper train` and `lookalike shopper promote`, or run the "
    "`lookalike_shopper_model` DAG"
)


async def get_state(request: Request) -> ServiceState:
    """The similarity bundle's state (loads, swaps, last error)."""
    return request.app.state.service


async def get_shopper_state(request: Request) -> ServiceState:
    """The shopper model's state."""
    return request.app.state.shopper


def _current(state: ServiceState) -> Live:
    """The live bundle, taken ONCE per request: a swap mid-request does not affect it."""
    try:
        return state.current()
    except NotReady as e:
        raise HTTPException(status_code=503, detail=f"not ready: {e}") from None


async def get_live(request: Request) -> Live:
    """The live similarity bundle (503 until one is loaded: the service is not ready)."""
    return _current(request.app.state.service)


def not_deployed(state: ServiceState) -> str:
    """What the service says when no shopper model is deployed, and how to deploy one."""
    src = state.source
    return (
        f"no shopper model deployed: no version of {src.model_name!r} is {src.alias!r} "
        f"in the registry; to deploy one, {HOW_TO_DEPLOY}"
    )


def shopper_live(state: ServiceState) -> Live:
    """The live shopper model, called from the route body so that a malformed request is a
    422 first. None deployed is the operator's to fix, not a passing outage: 404 saying how
    to deploy one; a deployed model not loaded yet, or refused, 503 as for similarity."""
    try:
        return state.current()
    except NotDeployed:
        raise HTTPException(status_code=404, detail=not_deployed(state)) from None
    except NotReady as e:
        raise HTTPException(status_code=503, detail=f"not ready: {e}") from None
