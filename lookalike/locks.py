"""Writer leases on the shared store: one writer at a time for the index and the served alias.

A refresh and a promotion (or two refreshes started by hand) must not both publish index
versions or both move ``production``: the second would build on a base that is no longer
the latest, or move the alias back to an older index. Airflow's ``max_active_runs=1`` only
keeps one run of ONE DAG, and the CLI runs outside Airflow, so the lease lives in the store
every writer already shares: a one-row Delta table per lease (``Settings.lock_uri``).

Taking the lease is an ``overwrite`` commit: delta-rs refuses an overwrite when another
commit landed since the table was read (conditional writes on S3), so two takers can never
both win. The holder renews it every ``ttl / 3`` from a background thread; a holder that
died (SIGKILL, lost host) blocks others for at most ``ttl`` seconds, and at once when it ran
on this host and its process is gone. Waiters poll until ``wait_seconds``, then raise
``LeaseHeld`` naming the holder. Every take, renewal and release is one small commit; the
table's log is checkpointed by delta-rs as any other table's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from lookalike import storage
from lookalike.config import Settings
from lookalike.faults import crash_point

if TYPE_CHECKING:
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("holder", pa.string()),  # "" when free
        ("purpose", pa.string()),
        ("host", pa.string()),
        ("pid", pa.int64()),
        ("expires_at", pa.float64()),  # seconds since the epoch
    ]
)
POLL_SECONDS = 0.5
#: The leases: index builds and updates; moves of the served alias (publish, rollback).
INDEXES = "indexes"
PRODUCTION = "production"
#: Moves of the shopper model's served alias (its promotion). Its own lease: it moves another
#: registered model than ``PRODUCTION`` guards, so a shopper promotion neither waits for nor
#: blocks a bundle publish or an encoder promotion; two shopper promotions still serialise.
SHOPPER = "shopper"


class LeaseHeld(RuntimeError):
    """Another writer holds the lease (and kept it longer than we were willing to wait)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: enough to tell a live holder from a dead one."""

    holder: str
    purpose: str
    host: str
    pid: int
    expires_at: float

    def alive(self) -> bool:
        """False when the lease expired, or its process ran on this host and is gone."""
        if not self.holder or self.expires_at < time.time():
            return False
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def describe(self) -> str:
        """The holder for an error message."""
        left = max(0.0, self.expires_at - time.time())
        return f"{self.purpose} (pid {self.pid} on {self.host}, lease ends in {left:.0f} s)"


def _table(uri: str) -> DeltaTable:
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    options = storage.delta_options(uri)
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        pass
    try:
        write_deltalake(uri, SCHEMA.empty_table(), storage_options=options, mode="append")
    except Exception:  # another taker created it first: the open below tells
        log.debug(f"lease table {uri} created concurrently")
    return DeltaTable(uri, storage_options=options)


def current(uri: str) -> tuple[DeltaTable, Holder | None]:
    """The lease table as read now, and its holder (None when free)."""
    dt = _table(uri)
    rows = dt.to_pyarrow_table().to_pylist()
    row = rows[0] if rows else None
    if row is None or not row["holder"]:
        return dt, None
    return dt, Holder(**row)


def _write(dt: DeltaTable, row: dict) -> bool:
    """Overwrite the lease row; False when another commit landed since ``dt`` was read."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    try:
        write_deltalake(dt, pa.Table.from_pylist([row], schema=SCHEMA), mode="overwrite")
    except CommitFailedError:
        return False
    return True


@contextmanager
def lease(
    uri: str, purpose: str, *, wait_seconds: float = 0.0, ttl_seconds: float = 60.0
) -> Iterator[None]:
    """Hold the writer lease at ``uri`` for the block; wait up to ``wait_seconds`` for it.

    Re-entrant within a thread: a block that already holds ``uri`` (a promotion bringing its
    index up to date and publishing it under one lease) runs without taking it again."""
    held_here = _held()
    if uri in held_here:
        yield
        return
    me = uuid.uuid4().hex
    row = {"holder": me, "purpose": purpose, "host": socket.gethostname(), "pid": os.getpid()}
    deadline = time.monotonic() + wait_seconds
    while True:
        dt, held = current(uri)
        if held is None or not held.alive():
            if _write(dt, row | {"expires_at": time.time() + ttl_seconds}):
                break
            continue  # another taker won the commit: look again
        if time.monotonic() >= deadline:
            raise LeaseHeld(
                f"{purpose}: another writer is at work: {held.describe()}. Nothing was "
                f"written; run again when it has finished (waited {wait_seconds:.0f} s)"
            )
        time.sleep(POLL_SECONDS)
    log.info(f"lease {storage.name(uri)} taken for {purpose}")
    crash_point("lease.taken")
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(uri, me, row, ttl_seconds, stop), name="lease-renewer", daemon=True
    )
    renewer.start()
    held_here.add(uri)
    try:
        yield
    finally:
        held_here.discard(uri)
        stop.set()
        renewer.join()
        dt, held = current(uri)
        if held is not None and held.holder == me:
            _write(dt, {"holder": "", "purpose": "", "host": "", "pid": 0, "expires_at": 0.0})


_LOCAL = threading.local()


def _held() -> set[str]:
    """The lease URIs this thread holds now."""
    if not hasattr(_LOCAL, "uris"):
        _LOCAL.uris = set()
    held: set[str] = _LOCAL.uris
    return held


def _renew(uri: str, me: str, row: dict, ttl: float, stop: threading.Event) -> None:
    """Push the lease's end forward every ``ttl / 3`` while the block runs."""
    while not stop.wait(ttl / 3):
        try:
            dt, held = current(uri)
            if held is None or held.holder != me:
                log.error(f"lease {storage.name(uri)} was lost (taken over after expiry)")
                return
            _write(dt, row | {"expires_at": time.time() + ttl})
        except Exception:  # a store hiccup: try again at the next tick, the lease still runs
            log.exception(f"renewing lease {storage.name(uri)} failed")


def writer_lease(settings: Settings, name: str, purpose: str) -> AbstractContextManager[None]:
    """Lease ``name`` (``INDEXES``, ``PRODUCTION``) of this deployment's store, waiting up
    to ``Settings.lock_wait_seconds``."""
    return lease(settings.lock_uri(name), purpose, wait_seconds=settings.lock_wait_seconds)
