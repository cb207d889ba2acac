"""Reader for the IDX format (MNIST / Fashion-MNIST), gzip or raw, with slicing.

Slicing lets each Spark task read only its records: a gzip stream is not seekable, but
``GzipFile.seek`` decompresses forward without keeping what it skips, so memory stays bounded.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """The file is not a well-formed IDX file."""


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_header(f: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    magic = f.read(4)
    if len(magic) != 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise IdxFormatError(f"{path}: not an IDX file (magic {magic!r})")
    ndim = magic[3]
    if ndim < 1:
        raise IdxFormatError(f"{path}: IDX file with no dimensions")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) != 4 * ndim:
        raise IdxFormatError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    return _DTYPES[magic[2]], dims, 4 + 4 * ndim


def idx_shape(path: Path | str) -> tuple[int, ...]:
    """Shape declared in the header (reads only the header)."""
    path = Path(path)
    with _open(path) as f:
        return _read_header(f, path)[1]


def read_idx(path: Path | str, start: int = 0, count: int | None = None) -> np.ndarray:
    """Records ``[start, start+count)`` of an IDX file as an array of shape ``(n, *dims[1:])``."""
    path = Path(path)
    with _open(path) as f:
        dtype, dims, header_len = _read_header(f, path)
        n_total = dims[0]
        if start < 0 or start > n_total:
            raise IndexError(f"{path}: start {start} outside 0..{n_total}")
        n = n_total - start if count is None else min(count, n_total - start)
        record = int(np.prod(dims[1:], dtype=np.int64)) if len(dims) > 1 else 1
        f.seek(header_len + start * record * dtype.itemsize)
        buf = f.read(n * record * dtype.itemsize)
        if len(buf) != n * record * dtype.itemsize:
            raise IdxFormatError(f"{path}: truncated data (wanted {n} records from {start})")
        return (
            np.frombuffer(buf, dtype=dtype)
            .astype(dtype.newbyteorder("="), copy=False)
            .reshape((n, *dims[1:]))
        )
