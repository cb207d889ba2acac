"""Request-scoped access to the service state (one place, so routes stay declarative)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from serving.state import Live, NotReady, ServiceState


def get_state(request: Request) -> ServiceState:
    """The similarity bundle's state (loads, swaps, last error)."""
    return request.app.state.service


def get_shopper_state(request: Request) -> ServiceState:
    """The shopper model's state."""
    return request.app.state.shopper


def _current(state: ServiceState) -> Live:
    """The live bundle, taken ONCE per request: a swap mid-request does not affect it."""
    try:
        return state.current()
    except NotReady as e:
        raise HTTPException(status_code=503, detail=f"not ready: {e}") from None


def get_live(request: Request) -> Live:
    """The live similarity bundle (503 until one is loaded)."""
    return _current(get_state(request))


def get_shopper_live(request: Request) -> Live:
    """The live shopper-model bundle (503 until one is loaded)."""
    return _current(get_shopper_state(request))
