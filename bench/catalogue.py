"""The one preamble every benchmark shares: a catalogue to measure on, and its version.

A fresh LOOKALIKE_HOME has no catalogue; each bench then ingests the default (Fashion-MNIST)
through the CLI, exactly as a user would, instead of repeating that check in every script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def ensure_catalogue(settings: Any) -> bool:
    """Ingest Fashion-MNIST when ``settings`` has no catalogue yet; True when it did."""
    from lookalike.catalog.table import is_table

    if is_table(settings.catalog_uri):
        return False
    print("[bench] no catalogue yet: ingesting Fashion-MNIST", flush=True)
    lookalike = str(Path(sys.executable).parent / "lookalike")
    subprocess.run([lookalike, "ingest", "fashion-mnist"], check=True)
    return True


def catalogue_version(settings: Any) -> tuple[str, int]:
    """(catalogue URI, its latest Delta version), ingesting the default catalogue first
    when there is none: every measurement then names the version it read."""
    from lookalike.catalog.table import resolve_version

    ensure_catalogue(settings)
    return str(settings.catalog_uri), resolve_version(settings.catalog_uri)
