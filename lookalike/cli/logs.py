"""Progress lines: library modules log with ``logging.getLogger(__name__)`` and never set up
logging; an entry point (``main``, so every command and Spark job; a benchmark) calls
``configure_logging`` once.

Progress goes to stderr, never stdout: commands print their result (JSON) on stdout alone.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

#: How a progress line looks: ``2026-01-01 12:00:00,000 lookalike.index.builder published ...``.
FORMAT = "%(asctime)s %(name)s %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a line is logged (as ``print(file=sys.stderr)``
    did), so a redirected or captured stderr is followed instead of an old stream kept."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        """The current ``sys.stderr``."""
        return sys.stderr


def configure_logging(level: int = logging.INFO) -> None:
    """Progress of the ``lookalike`` loggers on stderr at ``level``, once per process; left
    alone when logging is already set up (a handler on ``lookalike`` or on the root logger:
    Airflow, pytest, an embedding application)."""
    logger = logging.getLogger("lookalike")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
