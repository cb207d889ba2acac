"""Request-scoped access to the service state (one place, so routes stay declarative)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from serving.state import Live, NotReady, ServiceState


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def get_live(request: Request) -> Live:
    """The live bundle, taken ONCE per request: a swap mid-request does not affect it."""
    try:
        return get_state(request).current()
    except NotReady as e:
        raise HTTPException(status_code=503, detail=f"not ready: {e}") from None


def get_shopper_state(request: Request) -> ServiceState:
    return request.app.state.shopper


def get_shopper_live(request: Request) -> Live:
    """The live shopper-model bundle, taken once per request."""
    try:
        return get_shopper_state(request).current()
    except NotReady as e:
        raise HTTPException(status_code=503, detail=f"not ready: {e}") from None
