"""Writer leases (``lookalike.locks``) on real delta-rs tables: exclusive, waitable, renewed,
and taken over from a holder that died."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time

from lookalike import locks
from tests.support.builders import REPO


def _take_elsewhere(uri: str, purpose: str) -> locks.LeaseHeld | None:
    """Try the lease from another thread (the holder's own thread re-enters it): the refusal,
    or None when it was taken."""
    refused: list[locks.LeaseHeld] = []

    def other_writer() -> None:
        try:
            with locks.lease(uri, purpose):
                pass
        except locks.LeaseHeld as e:
            refused.append(e)

    t = threading.Thread(target=other_writer)
    t.start()
    t.join()
    return refused[0] if refused else None


def test_a_lease_is_exclusive_and_the_refusal_names_the_holder(tmp_path):
    uri = str(tmp_path / "locks" / "indexes")
    with locks.lease(uri, "full index build (enc/1)"):
        refused = _take_elsewhere(uri, "update")
    assert re.search(r"full index build \(enc/1\).*pid", str(refused))
    with locks.lease(uri, "incremental index update"):  # free again once released
        assert locks.current(uri)[1].purpose == "incremental index update"
    assert locks.current(uri)[1] is None


def test_a_lease_is_reentrant_within_its_thread(tmp_path):
    """A promotion brings its index up to date (an update, which takes the index lease) while
    it already holds that lease: the inner block runs, and the lease is kept until the outer
    one ends."""
    uri = str(tmp_path / "lease")
    with locks.lease(uri, "promote"):
        with locks.lease(uri, "catch-up update"):
            assert locks.current(uri)[1].purpose == "promote"
        assert locks.current(uri)[1].purpose == "promote"  # the inner exit released nothing
    assert locks.current(uri)[1] is None


def test_a_waiter_gets_the_lease_when_the_holder_finishes(tmp_path):
    uri = str(tmp_path / "lease")
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with locks.lease(uri, "first"):
            held.set()
            time.sleep(1.5)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    held.wait(30)
    with locks.lease(uri, "second", wait_seconds=60):
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"]


def test_a_held_lease_is_renewed_past_its_ttl(tmp_path):
    uri = str(tmp_path / "lease")
    with locks.lease(uri, "long job", ttl_seconds=1.5):
        time.sleep(3.0)  # two ttls: only the renewals keep it
        assert isinstance(_take_elsewhere(uri, "intruder"), locks.LeaseHeld)


def test_an_expired_lease_of_another_host_is_taken_over(tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    uri = str(tmp_path / "lease")
    row = {"holder": "x", "purpose": "lost", "host": "elsewhere", "pid": 1, "expires_at": 1.0}
    write_deltalake(uri, pa.Table.from_pylist([row], schema=locks.SCHEMA))
    with locks.lease(uri, "after expiry"):
        assert locks.current(uri)[1].purpose == "after expiry"


def test_the_lease_of_a_killed_process_on_this_host_is_taken_at_once(tmp_path):
    uri = str(tmp_path / "lease")
    code = (
        "from lookalike import locks\n"
        f"with locks.lease({uri!r}, 'doomed', ttl_seconds=3600):\n"
        "    pass\n"
    )
    env = os.environ | {"LOOKALIKE_CRASH_AT": "lease.taken"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, timeout=120)
    assert done.returncode == -9  # SIGKILL, holding the lease
    held = locks.current(uri)[1]
    assert held.purpose == "doomed" and held.host == socket.gethostname()
    assert not held.alive()
    with locks.lease(uri, "next run"):  # no waiting for the hour-long ttl
        pass
