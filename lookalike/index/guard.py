"""A readers-writer lock for a searcher that is updated in place.

ScaNN takes no lock of its own between ``search`` and ``upsert``/``delete``: a search that
runs while the partitions change can read freed memory. Searches share the lock (many at
once, as the service's threads do); an update takes it alone. Writers are preferred: once an
update waits, new searches queue behind it, so a steady stream of searches cannot starve the
change feed. Not re-entrant: take it once per public call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes before readers that arrive after it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Shared: any number of readers, no writer."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Exclusive: waits for the readers inside to leave; readers arriving later wait."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
