"""The one preamble every benchmark shares: a catalogue to measure on, and its version.

A fresh LOOKALIKE_HOME has no catalogue; each bench then ingests the default (Fashion-MNIST)
through the CLI, exactly as a user would, instead of repeating that check in every script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def ensure_catalog(settings: Any) -> bool:
    """Ingest Fashion-MNIST when ``settings`` has no catalogue yet; True when it did."""
    from lookalike.catalog.table import is_table

    if is_table(settings.catalog_uri):
        return False
    print("[bench] no catalogue yet: ingesting Fashion-MNIST", flush=True)
    lookalike = str(Path(sys.executable).parent / "lookalike")
    subprocess.run([lookalike, "ingest", "fashion-mnist"], check=True)
    return True


#: The commit metadata ``lookalike ingest fashion-mnist`` writes (``lookalike.source``).
STANDARD_SOURCE = "fashion-mnist"


def standard_version(history: list[dict[str, Any]]) -> int | None:
    """The newest version in a Delta ``history()`` (newest first) that the Fashion-MNIST
    ingest wrote; None when there is none."""
    for commit in history:
        if commit.get("lookalike.source") == STANDARD_SOURCE:
            return int(commit["version"])
    return None


def catalog_version(settings: Any) -> tuple[str, int]:
    """(catalogue URI, the version the Fashion-MNIST ingest wrote), ingesting it first when
    there is no catalogue. The quality benches' standard protocol is that catalogue as
    ingested (10,000 test photos against 60,000 train): a later commit to the same table,
    such as bench/index.py's simulated 1% of edits in the same LOOKALIKE_HOME, would
    otherwise change what they train and evaluate on (it did: p@1 0.9336 -> 0.9287 for the
    same configuration). Time travel reads the ingest's version whatever came after it."""
    from lookalike.catalog.table import open_table

    ensure_catalog(settings)
    uri = str(settings.catalog_uri)
    version = standard_version(open_table(uri).history())
    if version is None:
        raise SystemExit(
            f"{uri} has no commit from `lookalike ingest fashion-mnist`: the quality "
            "benchmarks measure on that catalogue (use a LOOKALIKE_HOME of its own)"
        )
    return uri, version
