"""``lookalike serve``: the recommendation service under uvicorn.

uvicorn imports the app by name (``serving.main:create_app``, a factory called with no
arguments, so it reads the same cached settings), so the library never imports ``serving``.
"""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.output import UsageError
from lookalike.config import get_settings

#: The app factory uvicorn imports and calls: ``create_app()`` uses ``get_settings()``.
APP_FACTORY = "serving.main:create_app"


def cmd_serve(args: argparse.Namespace) -> int:
    """``lookalike serve``: run the recommendation service with uvicorn."""
    import uvicorn

    settings = get_settings()
    host = args.host or settings.serve_host
    port = args.port or settings.serve_port
    if not 0 < port < 65536:
        raise UsageError(f"--port: must be 1..65535, got {port}")
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, log_level=args.log_level)
    return 0


def add_parser(sub: Any) -> None:
    """``serve``."""
    sv = sub.add_parser("serve", help="run the recommendation service (uvicorn)")
    sv.add_argument("--host", help="default: LOOKALIKE_SERVE_HOST (127.0.0.1)")
    sv.add_argument("--port", type=int, help="default: LOOKALIKE_SERVE_PORT (8000)")
    sv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sv.set_defaults(func=cmd_serve)
