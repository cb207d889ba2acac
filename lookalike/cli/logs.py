"""Progress lines: library modules log with ``logging.getLogger(__name__)`` and never set up
logging; an entry point (``main``, so every command and Spark job; a benchmark) calls
``configure_logging`` once.

Progress goes to stderr, never stdout: commands print their result (JSON) on stdout alone.
Third-party noise stays off stderr while a command runs (``quiet_third_parties``): Python
warnings, TensorFlow's C++ and Python log lines, MLflow's INFO lines; a
developer sees them all with ``lookalike --verbose ...`` or ``PYTHONWARNINGS``/``-W``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO

#: How a progress line looks: ``2026-01-01 12:00:00,000 lookalike.similarity.index published ...``.
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


def configure_logging(level: int = logging.INFO, *, verbose: bool = False) -> None:
    """Progress of the ``lookalike`` loggers on stderr at ``level`` (DEBUG when ``verbose``),
    once per process; left alone when logging is already set up (a handler on ``lookalike``
    or on the root logger: Airflow, pytest, an embedding application)."""
    logger = logging.getLogger("lookalike")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else level)


#: Environment that quiets libraries (read as they load, also by the Spark Python workers
#: this process starts): TensorFlow's C++ log lines (CUDA probing, oneDNN, CPU features);
#: MLflow's INFO and WARNING lines (creating its database, how it pickles a model) and its
#: download progress bars. A value already set wins.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

#: Python loggers of libraries that log warnings a user cannot act on (absl puts a handler
#: on the root logger, so TensorFlow's deprecation notes would reach stderr).
QUIET_LOGGERS = ("tensorflow", "absl", "h5py", "py4j")


def _drop_warning(*args: object, **kwargs: object) -> None:
    """``warnings.showwarning`` while quiet: nothing."""


@contextlib.contextmanager
def quiet_third_parties(verbose: bool = False) -> Iterator[None]:
    """While a command runs: no Python warnings, ``QUIET_ENV`` where unset, ``QUIET_LOGGERS``
    at ERROR; all as before afterwards. ``verbose``, or warning options given to Python
    (``-W``, ``PYTHONWARNINGS``): nothing is hidden."""
    if verbose or sys.warnoptions:
        yield
        return
    env = {k: v for k, v in QUIET_ENV.items() if k not in os.environ}
    loggers = {name: logging.getLogger(name) for name in QUIET_LOGGERS}
    levels = {name: lg.level for name, lg in loggers.items()}
    os.environ.update(env)
    for lg in loggers.values():
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # all of them: a library's warning is often attributed to the lookalike line that
            # called it (stacklevel), and lookalike reports through logging, not warnings
            warnings.simplefilter("ignore")
            # and not shown even where a library turns them back on for itself (MLflow's
            # ``simplefilter("once")`` around its type-hint checks)
            warnings.showwarning = _drop_warning
            yield
    finally:
        for name in env:
            os.environ.pop(name, None)
        for name, lg in loggers.items():
            lg.setLevel(levels[name])
