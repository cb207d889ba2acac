"""Where state lives: local paths or object-store URIs (``s3://bucket/prefix``), one module.

Every location is a string: an absolute local path (the one-machine default) or a URI that
``pyarrow.fs`` and delta-rs both understand (``s3://`` is tested; ``gs://`` and ``abfs://``
go through the same calls). Locations are joined here and nowhere else, and every byte read
or written outside a Delta table goes through ``pyarrow.fs`` here, so the same code runs on a
laptop and on hosts that share no disk. Credentials and the endpoint come from the standard
``AWS_*`` environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), which both
libraries read themselves; nothing here stores a secret.

Write safety: a file written here appears whole or not at all (local files through a
temporary name and ``os.replace``; an object-store PUT is atomic). Delta commits on S3 rely
on conditional writes (``If-None-Match``, which AWS S3, MinIO, R2 and moto honour and which
delta-rs 1.x uses by default): two writers can never both commit one table version; the
loser gets a commit conflict (see ``catalog.table.WriteConflict``).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

if TYPE_CHECKING:
    import pyarrow.dataset as pads

LOCAL_SCHEMES = ("", "file")
#: An object store's cost is per request (time to first byte), not per byte: Parquet reads
#: coalesce byte ranges up to the gap that costs as much to download as one more request.
#: The catalogue's 256-row groups made a read of its small columns ~550 serial requests
#: (9.7 s on the test server for 70k rows); coalesced, it is a few large reads (0.34 s).
STORE_FIRST_BYTE_MS = 30
STORE_MIB_PER_SECOND = 100
#: Concurrent GETs for many small objects (photos): latency-bound, so threads help.
STORE_READ_THREADS = 16


def scheme(uri: str | Path) -> str:
    """The URI's scheme (``""`` for a plain path)."""
    text = str(uri)
    return urlparse(text).scheme if "://" in text else ""


def is_local(uri: str | Path) -> bool:
    """True for a plain path or a ``file://`` URI."""
    return scheme(uri) in LOCAL_SCHEMES


def normalise(location: str | Path) -> str:
    """A location as stored in settings: local paths absolute, URIs without a trailing
    slash."""
    text = str(location)
    if is_local(text):
        return str(Path(text.removeprefix("file://")).expanduser().resolve())
    return text.rstrip("/")


def join(base: str | Path, *parts: str) -> str:
    """``base`` with ``parts`` appended by ``/`` (the one place locations are built)."""
    out = normalise(base)
    for part in parts:
        piece = str(part).strip("/")
        if piece:
            out = f"{out}/{piece}"
    return out


def name(uri: str) -> str:
    """The last component of a location."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def local_path(uri: str) -> Path:
    """The local path of a local location; a clear error for an object-store URI (for the
    few things that must stay on this host, such as caches)."""
    if not is_local(uri):
        raise ValueError(f"{uri}: a local path is needed here, not an object-store URI")
    return Path(normalise(uri))


def delta_options(uri: str | Path) -> dict[str, str]:
    """delta-rs ``storage_options`` for a table location. Credentials and endpoint come from
    the environment (delta-rs reads ``AWS_*`` itself); a plain-``http`` endpoint (a local
    test server, MinIO without TLS) must be allowed explicitly."""
    if is_local(uri):
        return {}
    options: dict[str, str] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint.startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"
    return options


@lru_cache(maxsize=16)
def _filesystem_for(root: str) -> pafs.FileSystem:
    return pafs.FileSystem.from_uri(root)[0]


def filesystem(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """The ``pyarrow.fs`` filesystem of a location and the path inside it (one client per
    scheme and bucket per process)."""
    uri = str(uri)
    if is_local(uri):
        return pafs.LocalFileSystem(), normalise(uri)
    parsed = urlparse(uri)
    fs = _filesystem_for(f"{parsed.scheme}://{parsed.netloc}")
    return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")


def _uri_of(uri: str, path: str) -> str:
    """The location of ``path`` (as ``filesystem`` returns paths) in ``uri``'s store."""
    if is_local(uri):
        return path
    return f"{scheme(uri)}://{path}"


@dataclass(frozen=True)
class Entry:
    """One listed file or folder."""

    uri: str
    is_dir: bool
    size: int
    mtime: float | None


def listdir(uri: str, *, recursive: bool = False) -> list[Entry]:
    """Files and folders below a location, sorted by location (missing: empty). Object
    stores have no empty folders, so a folder shows only through the files below it."""
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=recursive))
    return sorted(
        (
            Entry(
                uri=_uri_of(uri, i.path),
                is_dir=i.type == pafs.FileType.Directory,
                size=i.size or 0,
                mtime=i.mtime.timestamp() if i.mtime else None,
            )
            for i in infos
            if i.type in (pafs.FileType.File, pafs.FileType.Directory)
        ),
        key=lambda e: e.uri,
    )


def exists(uri: str) -> bool:
    """True when a file or a non-empty folder is at the location."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    return info.type != pafs.FileType.NotFound


def is_file(uri: str) -> bool:
    """True when a file is at the location."""
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def read_bytes(uri: str, limit: int | None = None) -> bytes:
    """The file's bytes (at most ``limit``; ``FileNotFoundError`` when missing)."""
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read() if limit is None else f.read(limit)


def read_many(uris: Sequence[str], limit: int | None = None) -> Iterator[bytes | OSError]:
    """Each file's bytes (as ``read_bytes``) in the order given, or the ``OSError`` reading
    it raised. Object-store files are fetched ``STORE_READ_THREADS`` at a time: one GET costs
    a round trip, and a batch of photos would otherwise pay them one after another."""

    def one(uri: str) -> bytes | OSError:
        try:
            return read_bytes(uri, limit)
        except OSError as e:
            return e

    if all(is_local(u) for u in uris) or len(uris) < 2:
        yield from map(one, uris)
        return
    with ThreadPoolExecutor(min(STORE_READ_THREADS, len(uris))) as pool:
        yield from pool.map(one, uris)


def parquet_format() -> pads.ParquetFileFormat:
    """How every Parquet file outside a Delta table is read: byte ranges coalesced on an
    object store (see ``STORE_FIRST_BYTE_MS``)."""
    import pyarrow.dataset as pads

    options = pads.ParquetFragmentScanOptions(
        pre_buffer=True,
        cache_options=pa.CacheOptions.from_network_metrics(
            STORE_FIRST_BYTE_MS, STORE_MIB_PER_SECOND
        ),
    )
    return pads.ParquetFileFormat(default_fragment_scan_options=options)


def parquet_file(uri: str) -> pads.ParquetFileFragment:
    """One Parquet file as a fragment read as ``parquet_format`` says; ``.row_groups`` and
    ``.to_table(columns=...)`` read it."""
    fs, path = filesystem(uri)
    return parquet_format().make_fragment(path, filesystem=fs)


def parquet_batches(
    uri: str, columns: Iterable[str], batch_rows: int = 1000
) -> Iterator[pa.RecordBatch]:
    """The ``columns`` of one Parquet file, in file order, in batches of at most
    ``batch_rows``, read as ``parquet_file`` does."""
    yield from parquet_file(uri).to_batches(columns=list(columns), batch_size=batch_rows)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file: readers see the old file or the new one, never a part."""
    fs, path = filesystem(uri)
    if is_local(uri):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    with fs.open_output_stream(path) as f:
        f.write(data)


def ensure_dir(uri: str) -> None:
    """Create a local folder (object stores need none)."""
    if is_local(uri):
        Path(normalise(uri)).mkdir(parents=True, exist_ok=True)


def remove_tree(uri: str) -> None:
    """Delete a folder and everything below it (missing: nothing to do)."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return
    fs.delete_dir(path)


def remove_file(uri: str) -> None:
    """Delete one file (missing: nothing to do)."""
    fs, path = filesystem(uri)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(path)


def sibling(uri: str, other: str) -> str:
    """The location named ``other`` in the same folder as ``uri``."""
    return join(normalise(uri).rsplit("/", 1)[0], other)


def relative(uri: str, root: str) -> str:
    """``uri``'s path below ``root``, ``/``-separated (``ValueError`` when it is not below)."""
    base, target = normalise(root), normalise(uri)
    if not target.startswith(base + "/"):
        raise ValueError(f"{uri} is not below {root}")
    return target[len(base) + 1 :]


def resolve(root: str, path: str) -> str:
    """A path from a listing file (a metadata CSV): relative paths are taken below ``root``,
    absolute paths and URIs as they are; ``.`` and ``..`` are folded."""
    if "://" in path:
        return path
    if is_local(root):
        return os.path.normpath(os.path.join(normalise(root), path))
    if path.startswith("/"):
        return path
    return join(root, posixpath.normpath(path))
