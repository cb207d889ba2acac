"""Product photos read on demand from the catalogue table, with a cache bounded in bytes.

The service shows the photo of any item it serves, but must not hold the catalogue's image
bytes in memory: they grow with the catalogue (100 KB photos x 1M items = 100 GB). At load
time it reads only the ``item_id`` column of the table's files at the bundle's version and
remembers where each item is (file, row group, row). A photo is then read from the store
with its row group (``image`` column only; the table is written in small row groups, see
``table.WRITER_PROPERTIES``), and recently read row groups are kept up to ``max_bytes``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lookalike import storage
from lookalike.catalog.table import is_table, open_table, snapshot_files

if TYPE_CHECKING:
    import pyarrow.dataset as pads


class CatalogPhotos:
    """Photos of the items of one catalogue version (``wanted``: only these ids)."""

    def __init__(
        self, uri: str, version: int, wanted: set[str] | None = None, max_bytes: int = 64 << 20
    ) -> None:
        self.max_bytes = max_bytes
        self._files: list[pads.ParquetFileFragment] = []  # footers read once
        self._where: dict[str, tuple[int, int, int]] = {}  # item id -> (file, row group, row)
        self._cache: OrderedDict[tuple[int, int], list[bytes | None]] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._known: set[str] = set()  # the files already located
        self.uri, self.version = uri, version
        if is_table(uri):
            for _ in self._locate(snapshot_files(open_table(uri, version)), wanted):
                pass

    def extend(self, version: int, ids: set[str]) -> dict[str, tuple[int, str]]:
        """Locate ``ids`` in the table at a newer ``version`` (items the change feed adds or
        replaces), reading only the files that appeared since the versions located so far;
        returns their (category id, category name). Ids not found stay where they were."""
        if not ids or not is_table(self.uri):
            return {}
        files = [f for f in snapshot_files(open_table(self.uri, version)) if f not in self._known]
        facts: dict[str, tuple[int, str]] = {}
        with self._lock:
            for rows in self._locate(files, ids, ["category", "category_name"]):
                for item, category, name in zip(*rows, strict=True):
                    if item in ids:
                        facts[item] = (int(category), str(name))
            self.version = max(self.version, version)
        return facts

    def _locate(
        self, files: list[str], wanted: set[str] | None, extra: list[str] | None = None
    ) -> Iterator[list[list]]:
        """Where each item is: the ``item_id`` column read in coalesced ranges (a request
        per row group would cost one round trip each), row groups from the footer. Yields
        each file's ``item_id`` and ``extra`` columns as lists."""
        for uri in files:
            fragment = storage.parquet_file(uri)
            columns = fragment.to_table(columns=["item_id", *(extra or [])]).columns
            ids = columns[0].to_pylist()
            f, start = len(self._files), 0
            for g, group in enumerate(fragment.row_groups):
                for row, item in enumerate(ids[start : start + group.num_rows]):
                    if wanted is None or item in wanted:
                        self._where[item] = (f, g, row)
                start += group.num_rows
            self._files.append(fragment)
            self._known.add(uri)
            yield [ids, *(c.to_pylist() for c in columns[1:])]

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._where

    @property
    def cached_bytes(self) -> int:
        """Image bytes held in the cache now: at most ``max_bytes``, or one row group when a
        single group is larger."""
        return self._cached_bytes

    def get(self, item_id: str) -> bytes | None:
        """The item's PNG, or None when the item is not in this catalogue version."""
        where = self._where.get(item_id)
        if where is None:
            return None
        f, g, row = where
        with self._lock:
            group = self._cache.get((f, g))
            if group is not None:
                self._cache.move_to_end((f, g))
                return group[row]
        group = self._read_group(f, g)
        with self._lock:
            if (f, g) not in self._cache:
                self._cache[(f, g)] = group
                self._cached_bytes += sum(len(b or b"") for b in group)
            while self._cached_bytes > self.max_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= sum(len(b or b"") for b in old)
        return group[row]

    def _read_group(self, f: int, g: int) -> list[bytes | None]:
        group = self._files[f].subset(row_group_ids=[g])
        return group.to_table(columns=["image"]).column(0).to_pylist()
