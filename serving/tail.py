"""Following the ``embeddings`` change feed between bundles: what makes a landed photo
searchable without a new index version.

Each service process, on its own thread, reads the changes committed to ``embeddings`` after
the version its live searcher holds (the snapshot's ``embeddings_version``, then whatever it
applied since) and applies them in place (``Recommender.apply``). Nothing is written: a
process that dies loses only what it applied in memory, and the next one catches up from its
snapshot. Two processes reading the same table reach the same version and the same answers.
A bundle about to be swapped in is caught up first (``catch_up`` in ``load_live``), so a
swap never goes back in time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from lookalike.config import Settings
from lookalike.similarity.bundle import Applied, StaleChanges
from lookalike.similarity.feed import latest_version, read_feed

if TYPE_CHECKING:
    from lookalike.catalog.photos import CatalogPhotos
    from lookalike.similarity.bundle import Recommender
    from serving.metrics import Metrics

log = logging.getLogger("lookalike.serving.tail")

#: At most this many table versions per step: a long backlog applies in bounded steps, so
#: searches never wait behind one huge update.
MAX_VERSIONS_PER_STEP = 20


def catch_up(
    settings: Settings,
    rec: Recommender,
    photos: CatalogPhotos | None,
    metrics: Metrics | None = None,
    *,
    steps: int = 1000,
) -> Applied | None:
    """Apply what the feed holds beyond ``rec``'s searcher (None: nothing new, or a bundle
    that does not follow the feed), locating new items' photos in ``photos``. Up to ``steps``
    bounded steps."""
    last = None
    for _ in range(steps):
        applied = step(settings, rec, photos, metrics)
        if applied is None:
            break
        last = applied
    return last


def step(
    settings: Settings,
    rec: Recommender,
    photos: CatalogPhotos | None,
    metrics: Metrics | None = None,
) -> Applied | None:
    """One bounded step of the feed (None: nothing to do)."""
    since = rec.embeddings_version
    until = latest_version(settings.embeddings_uri)
    if since is None or until is None or until <= since:
        return None
    until = min(until, since + MAX_VERSIONS_PER_STEP)
    t0 = time.monotonic()
    enc = rec.manifest["encoder"]
    changes = read_feed(
        settings.embeddings_uri,
        (enc["name"], str(enc["version"])),
        rec.vectors.shape[1],
        since,
        until,
    )
    facts = {}
    if changes.upserts and photos is not None and changes.catalog_version is not None:
        facts = photos.extend(changes.catalog_version, set(changes.upserts))
    try:
        applied = rec.apply(changes, facts)
    except StaleChanges:  # another thread applied them first: nothing lost
        return None
    for s in changes.skipped:
        log.warning("change feed v%s: skipped %s: %s", until, s.item_id, s.reason)
    for item_id in applied.no_facts:
        log.warning("change feed v%s: skipped %s: not in the catalogue", until, item_id)
    if metrics is not None:
        _count(metrics, applied, changes.skipped, time.monotonic() - t0)
    if not changes.empty:
        log.info(
            "change feed v%s -> v%s: +%d ~%d -%d in %.3f s",
            since,
            until,
            applied.added,
            applied.replaced,
            applied.deleted,
            time.monotonic() - t0,
        )
    return applied


def _count(metrics: Metrics, applied: Applied, skipped: list, seconds: float) -> None:
    """The step on the service's metrics."""
    m = metrics
    m.feed_version.set(applied.version)
    for op, n in (("added", applied.added), ("replaced", applied.replaced)):
        m.feed_changes.labels(op).inc(n)
    m.feed_changes.labels("deleted").inc(applied.deleted)
    for s in skipped:
        m.feed_skipped.labels(s.kind).inc()
    if applied.no_facts:
        m.feed_skipped.labels("not_in_catalogue").inc(len(applied.no_facts))
    m.feed_apply_seconds.observe(seconds)


class FeedFollower:
    """The thread that tails the feed for the similarity bundle a ``ServiceState`` serves
    (``state.live``: a ``serving.state.Live``)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start tailing (not when ``serve_tail_seconds`` is 0)."""
        if self.state.settings.serve_tail_seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="feed-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        settings, metrics = self.state.settings, self.state.metrics
        while not self._stop.is_set():
            live = self.state.live
            try:
                if live is not None:
                    catch_up(settings, live.rec, live.photos, metrics, steps=10)
            except Exception:  # never let the follower die: the next poll retries
                metrics.feed_errors.inc()
                log.exception("change feed step failed (serving what is applied)")
            self._stop.wait(settings.serve_tail_seconds)
