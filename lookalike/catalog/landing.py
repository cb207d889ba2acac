"""When the landing store changed: a listing fingerprint and two markers.

The landing folder (a local folder or ``s3://``) is the retailer's full photo set. Its
listing (every file's path, size and modification time) has a fingerprint; an addition, a
replacement and a removal all change it. Two markers beside the lake say what happened to a
fingerprint: ``fired`` (the triggerer announced it; the fresh-ingest DAG will run) and
``ingested`` (a run ingested and embedded the landing store as it was listed then). The
trigger fires when the listing is neither ingested nor announced, or was announced a while
ago and still is not ingested (an event Airflow kept queued, a run that failed): so a change
is announced once, and never forgotten.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass

from lookalike import storage

FIRED, INGESTED = "fired", "ingested"


@dataclass(frozen=True)
class Listing:
    """A landing store's listing: its fingerprint and how many files it holds."""

    fingerprint: str
    files: int


@dataclass(frozen=True)
class Marker:
    """A fingerprint and when it was written (seconds since the epoch)."""

    fingerprint: str
    files: int
    at: float


def listing(uri: str) -> Listing:
    """The landing store's listing now (a missing folder lists as empty)."""
    h = hashlib.sha256()
    files = 0
    for e in storage.listdir(uri, recursive=True):
        if e.is_dir:
            continue
        files += 1
        h.update(f"{storage.relative(e.uri, uri)}\0{e.size}\0{e.mtime}\n".encode())
    return Listing(h.hexdigest(), files)


def marker_uri(state_uri: str, kind: str) -> str:
    """Where a marker lives (``kind``: ``fired`` or ``ingested``)."""
    return storage.join(state_uri, f"landing-{kind}.json")


def read_marker(state_uri: str, kind: str) -> Marker | None:
    """The marker, or None when none was written (or it is unreadable: as if none)."""
    uri = marker_uri(state_uri, kind)
    try:
        return Marker(**json.loads(storage.read_bytes(uri)))
    except (FileNotFoundError, OSError, ValueError, TypeError):
        return None


def write_marker(state_uri: str, kind: str, seen: Listing, now: float | None = None) -> Marker:
    """Write a marker (whole or not at all: ``storage.write_bytes``)."""
    marker = Marker(seen.fingerprint, seen.files, time.time() if now is None else now)
    storage.write_bytes(marker_uri(state_uri, kind), json.dumps(asdict(marker)).encode())
    return marker


def due(
    seen: Listing,
    ingested: Marker | None,
    fired: Marker | None,
    now: float,
    refire_seconds: float,
) -> bool:
    """True when ``seen`` should be announced: not ingested yet, and not announced, or
    announced more than ``refire_seconds`` ago. An empty store nobody ingested is no news."""
    if ingested is not None and ingested.fingerprint == seen.fingerprint:
        return False
    if ingested is None and seen.files == 0:
        return False
    if fired is not None and fired.fingerprint == seen.fingerprint:
        return now - fired.at >= refire_seconds
    return True
