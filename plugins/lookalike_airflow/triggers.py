"""The event trigger that starts a fresh ingest: photos landed, were replaced or removed.

Runs in Airflow's triggerer (an ``AssetWatcher`` of the ``lookalike_landing`` asset). Every
``poll_seconds`` it lists the landing store (a local folder or ``s3://``) and yields one event
when the listing is news (``lookalike.catalog.landing.due``): not ingested, and not announced
or announced ``refire_seconds`` ago without being ingested since. Before yielding, it writes
the ``fired`` marker, so a restarted triggerer does not announce the same listing twice.
The listing is blocking I/O: it runs on a worker thread, never on the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

#: A listing announced but not ingested after this long is announced again: an event Airflow
#: kept queued (apache/airflow#56050) or a failed run is retried without anyone's help.
REFIRE_SECONDS = 120.0


class LandingChangedTrigger(BaseEventTrigger):
    """Fires when the landing store's listing changed since it was last ingested."""

    def __init__(
        self,
        landing_uri: str,
        state_uri: str,
        poll_seconds: float = 2.0,
        refire_seconds: float = REFIRE_SECONDS,
    ) -> None:
        super().__init__()
        self.landing_uri = landing_uri
        self.state_uri = state_uri
        self.poll_seconds = poll_seconds
        self.refire_seconds = refire_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "landing_uri": self.landing_uri,
                "state_uri": self.state_uri,
                "poll_seconds": self.poll_seconds,
                "refire_seconds": self.refire_seconds,
            },
        )

    def check(self) -> dict[str, Any] | None:
        """One poll (blocking): the event's payload when the listing is news, else None."""
        from lookalike.catalog import landing

        seen = landing.listing(self.landing_uri)
        now = time.time()
        ingested = landing.read_marker(self.state_uri, landing.INGESTED)
        fired = landing.read_marker(self.state_uri, landing.FIRED)
        if not landing.due(seen, ingested, fired, now, self.refire_seconds):
            return None
        landing.write_marker(self.state_uri, landing.FIRED, seen, now)
        return {
            "landing_uri": self.landing_uri,
            "fingerprint": seen.fingerprint,
            "files": seen.files,
            "ingested_files": ingested.files if ingested else None,
            "listed_at": now,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                payload = await asyncio.to_thread(self.check)
            except Exception as e:  # a store that is down for a moment: try again next poll
                self.log.warning("cannot list %s: %s", self.landing_uri, e)
                payload = None
            if payload is not None:
                self.log.info("landing store changed: %s", payload)
                yield TriggerEvent(payload)
            await asyncio.sleep(self.poll_seconds)
