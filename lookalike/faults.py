"""Named crash points, for the fault tests: ``LOOKALIKE_CRASH_AT=<name>`` kills this process
with SIGKILL when it reaches ``crash_point(name)`` (no cleanup runs: what the OOM killer or a
lost host leaves behind). Unset, a crash point costs one environment lookup.

The points sit between the steps whose order makes a write safe (files before manifest,
embeddings before the index that uses them, register before the alias moves), so the tests
can prove that no reader ever sees a half-written version and that the next run recovers.
"""

from __future__ import annotations

import os
import signal

ENV = "LOOKALIKE_CRASH_AT"


def crash_point(name: str) -> None:
    """Die here, at once, when ``LOOKALIKE_CRASH_AT`` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
