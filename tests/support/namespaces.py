"""Run a process as if on another host: in its own mount namespace, with an empty tmpfs over
the folders only the test's "driver host" should see.

``unshare --mount --propagation private`` gives the process a private copy of the mounts;
mounting a tmpfs over a folder there hides its files from that process alone. Anything the
process still expects through a local path of the driver then fails, which is how the tests
prove that a worker or the service needs no shared disk. Needs root (CI runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HIDE_SCRIPT = 'for d in "$@"; do [ "$d" = -- ] && break; mount -t tmpfs none "$d"; done; '
HIDE_SCRIPT += 'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'


def can_hide() -> bool:
    """True when this process may create mount namespaces (root, ``unshare`` present)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    return probe.returncode == 0


def hidden(cmd: list[str], hide: list[Path]) -> list[str]:
    """``cmd`` run with every folder of ``hide`` replaced by an empty tmpfs."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        HIDE_SCRIPT,
        "hide",
        *[str(p) for p in hide],
        "--",
        *cmd,
    ]
