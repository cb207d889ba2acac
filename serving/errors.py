"""One error body for every 4xx and 5xx (``Problem``): the handlers that send it and the
``responses=`` entries that declare it, so the OpenAPI schema says what the service sends."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serving.schemas import FieldError, Problem

log = logging.getLogger("lookalike.serving")

DESCRIPTIONS = {
    400: "not a usable image (corrupt, bomb, too small)",
    401: "no bearer token",
    403: "wrong token, or admin disabled",
    404: "unknown item",
    413: "upload larger than the limit",
    415: "not a PNG or JPEG",
    422: "invalid parameter: `errors` names each field",
    500: "unexpected server error",
    503: "no bundle loaded yet",
}


def problems(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring ``Problem`` for these status codes (plus 500, which
    any route can send); ``descriptions`` override the defaults by ``s<code>=``."""
    return {
        code: {"model": Problem, "description": descriptions.get(f"s{code}", DESCRIPTIONS[code])}
        for code in (*codes, 500)
    }


def _body(detail: str, errors: list[FieldError] | None = None) -> dict[str, Any]:
    return Problem(detail=detail, errors=errors or []).model_dump(mode="json")


def install(app: FastAPI) -> None:
    """Send ``Problem`` for validation errors, ``HTTPException`` and anything unhandled."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # 422 with a readable message naming the first field, and every field listed.
        errors = [
            FieldError(
                loc=[str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
                msg=str(e.get("msg", "invalid")),
                type=str(e.get("type", "invalid")),
            )
            for e in exc.errors()
        ]
        first = errors[0] if errors else None
        where = ".".join(
            str(p)
            for p in (first.loc if first else ())
            if p not in ("query", "body", "path", "header")
        )
        detail = f"{where}: {first.msg}" if first else "invalid request"
        return JSONResponse(status_code=422, content=_body(detail, errors))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content=_body(str(exc.detail)),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content=_body(f"internal error: {type(exc).__name__}"))
