"""Request-scoped access to the service state (one place, so routes stay declarative).

The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hand-off per request that cost more than the by-id search itself."""

from __future__ import annotations

from fastapi import HTTPException, Request

from serving.state import Live, NotReady, ServiceState


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
    """The live similarity bundle (503 until one is loaded)."""
    return _current(request.app.state.service)


async def get_shopper_live(request: Request) -> Live:
    """The live shopper-model bundle (503 until one is loaded)."""
    return _current(request.app.state.shopper)
