"""When the landing store changed: a listing fingerprint and two markers.

The landing folder (a local folder or ``s3://``) is the retailer's full photo set. Its
listing (every file's path, size and modification time) has a fingerprint; an addition, a
replacement and a removal all change it. Two markers beside the lake say what happened to a
fingerprint: ``fired`` (the triggerer announced it; the fresh-ingest DAG will run) and
``ingested`` (a run ingested and embedded the landing store as it was listed then). The
trigger fires when the listing is neither ingested nor announced, or was announced a while
ago and still is not ingested (an event Airflow kept queued, a run that failed): so a change
is announced once, and never forgotten. Beside the ``ingested`` marker, the listing's files
(path, size, modification time) as that run saw them: the next run reads only the files that
differ (``lookalike.catalog.small_ingest``).
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


#: A listed file: (size in bytes, modification time), by its path below the landing store.
Files = dict[str, tuple[int, float | None]]


def list_files(uri: str) -> Files:
    """The landing store's files now (a missing folder lists as empty)."""
    return {
        storage.relative(e.uri, uri): (e.size, e.mtime)
        for e in storage.listdir(uri, recursive=True)
        if not e.is_dir
    }


def listing_of(files: Files) -> Listing:
    """The listing (fingerprint and count) of listed files."""
    h = hashlib.sha256()
    for rel in sorted(files):
        size, mtime = files[rel]
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return Listing(h.hexdigest(), len(files))


def listing(uri: str) -> Listing:
    """The landing store's listing now (a missing folder lists as empty)."""
    return listing_of(list_files(uri))


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


def files_uri(state_uri: str, kind: str) -> str:
    """Where the files of a marked listing live (``kind``: ``listed`` by a run that handed
    its ingest to Spark, ``ingested``)."""
    return storage.join(state_uri, f"landing-{kind}-files.json")


def write_files(state_uri: str, kind: str, files: Files) -> None:
    """Record a listing's files (whole or not at all)."""
    body = {"fingerprint": listing_of(files).fingerprint, "files": files}
    storage.write_bytes(files_uri(state_uri, kind), json.dumps(body).encode())


def read_files(state_uri: str, kind: str, fingerprint: str | None = None) -> Files | None:
    """Recorded files (of the listing ``fingerprint`` when given), or None: none recorded,
    unreadable, or of another listing."""
    try:
        body = json.loads(storage.read_bytes(files_uri(state_uri, kind)))
        files = {rel: (int(v[0]), v[1]) for rel, v in body["files"].items()}
    except (FileNotFoundError, OSError, ValueError, TypeError, KeyError, IndexError):
        return None
    if fingerprint is not None and body.get("fingerprint") != fingerprint:
        return None
    return files


def mark_ingested(state_uri: str, files: Files, now: float | None = None) -> Marker:
    """A run ingested the landing store as ``files`` listed it: its files first, then the
    marker (a marker never names files that were not recorded)."""
    write_files(state_uri, INGESTED, files)
    return write_marker(state_uri, INGESTED, listing_of(files), now)
