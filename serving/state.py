"""What the service is serving, and how it changes: the live bundle and the alias watcher.

``ServiceState.live`` is one immutable ``Live`` object; a reload builds a complete new one off
the request path (download, checksum verification, self-check, catalogue images) and then
swaps the reference in one assignment. A request takes ``live`` once at its start, so requests
in flight finish on the version they started with. A version that fails to load is never
swapped in: the old one keeps serving, the failure is counted and remembered with its reason.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from lookalike.config import Settings
from lookalike.registry import cache
from lookalike.registry.cache import load_registered
from serving.metrics import Metrics

log = logging.getLogger("lookalike.serving")


class NotReady(RuntimeError):
    """No bundle is loaded; the message says why."""


class NotDeployed(NotReady):
    """No bundle is loaded because the registry was read and no version carries the alias:
    nothing will load until someone deploys one (unlike loading, failed or unreachable)."""


#: What the service can say of a followed model (``ServiceState.status``).
SERVING, NOT_DEPLOYED, NOT_READY = "serving", "not deployed", "not ready"


@dataclass(frozen=True)
class Live:
    rec: Any  # a lookalike.similarity.bundle Recommender, or a lookalike.shopper ShopperRecommender
    bundle_version: str
    loaded_at: datetime
    photos: Any = None  # lookalike.catalog.photos.CatalogPhotos (similarity bundles only)

    def versions(self) -> dict[str, Any]:
        """Every answer's provenance (a copy: callers may add to it), with the embeddings
        version the searcher holds now (similarity bundles follow the change feed)."""
        v = dict(self._versions)
        if "embeddings_version" in v:
            v["embeddings_version"] = self.rec.embeddings_version
        return v

    @cached_property
    def _versions(self) -> dict[str, Any]:  # fixed for the bundle's life; once, not per request
        return self.rec.versions() | {
            "bundle_version": self.bundle_version,
            "loaded_at": self.loaded_at.isoformat(),
        }

    @property
    def category_counts(self) -> dict[int, int]:
        """Indexed items per category id (similarity bundles; deleted items left out)."""
        return self.rec.category_counts()


@dataclass
class ReloadOutcome:
    action: str  # swapped | unchanged | failed | no-version | unreachable
    version: str | None = None
    reason: str | None = None
    seconds: float = 0.0


def load_live(settings: Settings, version: str) -> Live:
    """A similarity bundle version, and where its items' photos are in the catalogue table
    at the bundle's version (read on demand, cached up to ``serve_photo_cache_bytes``)."""
    from lookalike.catalog.photos import CatalogPhotos
    from serving.tail import catch_up

    rec = load_registered(settings, settings.recommender_model_name, version)
    photos = CatalogPhotos(
        settings.catalog_uri,
        int(rec.manifest["catalog_version"]),
        set(rec.item_ids),
        max_bytes=settings.serve_photo_cache_bytes,
    )
    if settings.serve_tail_seconds > 0:  # never swap in a searcher behind the live one
        catch_up(settings, rec, photos)
    return Live(rec=rec, bundle_version=version, loaded_at=datetime.now(UTC), photos=photos)


def load_shopper_live(settings: Settings, version: str) -> Live:
    """A shopper-model bundle version (factors, ScaNN MIPS searcher, fallback)."""
    rec = load_registered(settings, settings.shopper_model_name, version)
    return Live(rec=rec, bundle_version=version, loaded_at=datetime.now(UTC))


@dataclass(frozen=True)
class Followed:
    """One registered model the service follows by alias, and how to load its versions."""

    label: str  # the `model` label of the metrics: similar | shopper
    model_name: str
    alias: str
    load: Callable[[Settings, str], Live]

    @classmethod
    def similar(cls, settings: Settings) -> Followed:
        return cls("similar", settings.recommender_model_name, settings.serve_alias, load_live)

    @classmethod
    def shopper(cls, settings: Settings) -> Followed:
        return cls(
            "shopper", settings.shopper_model_name, settings.shopper_alias, load_shopper_live
        )


def prune_bundle_cache(settings: Settings, name: str, keep: set[str]) -> None:
    """Downloaded bundles other than the live and the previous one are not needed any more."""
    cache.prune(settings, cache.BUNDLES, name, keep)


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    followed: Followed | None = None  # None: the similarity bundle
    live: Live | None = None
    last_error: str | None = None
    # what the last registry read said: True a version carries the alias, False none does,
    # None not read yet or unreachable (so a 503 "not ready" is never mistaken for "none")
    deployed: bool | None = None
    failed: dict[str, str] = field(default_factory=dict)  # version -> why it was refused
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _client: Any = None
    _trim_due: bool = False  # a bundle was swapped out: give its memory back on the next poll

    def __post_init__(self) -> None:
        if self.followed is None:
            self.followed = Followed.similar(self.settings)

    @property
    def source(self) -> Followed:
        assert self.followed is not None
        return self.followed

    def current(self) -> Live:
        live = self.live
        if live is None:
            reason = (
                self.last_error
                or f"no {self.source.alias!r} version of {self.source.model_name!r} loaded yet"
            )
            raise NotDeployed(reason) if self.deployed is False else NotReady(reason)
        return live

    def status(self) -> str:
        """serving, not deployed (the registry has no version under the alias) or not ready
        (not read yet, registry unreachable, a version loading or refused)."""
        if self.live is not None:
            return SERVING
        return NOT_DEPLOYED if self.deployed is False else NOT_READY

    def _alias_version(self) -> str | None:
        """The version the followed alias points to; None when none does (other registry
        failures raise)."""
        from lookalike.registry.mlflow_setup import registry_client
        from lookalike.registry.versions import find_version

        if self._client is None:  # one client for the life of the service
            self._client = registry_client(self.settings)
        mv = find_version(self.source.model_name, self.source.alias, client=self._client)
        return None if mv is None else str(mv.version)

    def reload(self, *, force: bool = False) -> ReloadOutcome:
        """Follow the alias once. ``force`` retries a version that failed before."""
        t0 = time.monotonic()
        src, m = self.source, self.metrics
        with self._lock:
            try:
                version = self._alias_version()
            except Exception as e:  # MLflow unreachable: keep serving what we have
                self.deployed = None  # and no longer claim to know whether one is deployed
                if self.live is None:
                    self.last_error = f"cannot read the registry: {type(e).__name__}: {e}"[:500]
                m.poll_errors.labels(src.label).inc()
                log.warning("cannot read alias %s of %s: %s", src.alias, src.model_name, e)
                return ReloadOutcome("unreachable", reason=str(e)[:300])
            self.deployed = version is not None
            if version is None:
                if self.live is None:
                    self.last_error = (
                        f"no {src.alias!r} version of {src.model_name!r} in the registry yet"
                    )
                return ReloadOutcome("no-version")
            if self.live is not None and self.live.bundle_version == version:
                return ReloadOutcome("unchanged", version)
            if version in self.failed and not force:
                return ReloadOutcome("failed", version, self.failed[version])
            try:
                live = src.load(self.settings, version)
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"[:500]
                self.failed[version] = reason
                m.reload_failures.labels(src.label).inc()
                if self.live is None:
                    self.last_error = f"{src.model_name} version {version} failed to load: {reason}"
                log.error(
                    "%s version %s refused, keeping the old one: %s",
                    src.model_name,
                    version,
                    reason,
                )
                return ReloadOutcome("failed", version, reason, round(time.monotonic() - t0, 2))
            previous = self.live
            self.live = live  # the swap: one reference assignment
            self.last_error = None
            m.reloads.labels(src.label).inc()
            m.index_size.labels(src.label).set(len(live.rec))
            m.live_version.labels(src.label).set(float(version))
            log.info("now serving %s version %s (%s)", src.model_name, version, live.rec.versions())
            # Everything loaded so far (TensorFlow, the bundle) is long-lived: keep it out of
            # the cyclic GC, whose full passes over it stalled requests for ~0.4 s.
            gc.freeze()
            keep = {version} | ({previous.bundle_version} if previous else set())
            prune_bundle_cache(self.settings, src.model_name, keep)
            self._trim_due = previous is not None
            return ReloadOutcome("swapped", version, seconds=round(time.monotonic() - t0, 2))

    # ------------------------------------------------------------------ watcher

    def start_watcher(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name=f"{self.source.label}-watcher", daemon=True
        )
        self._thread.start()

    def stop_watcher(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                if self._trim_due:  # one poll after a swap: requests on the old one are done
                    self._trim_due = False
                    release_freed_memory()
                self.reload()
            except Exception:  # never let the watcher die
                log.exception("bundle watcher iteration failed")
            self._stop.wait(self.settings.serve_poll_seconds)


def release_freed_memory() -> None:
    """Collect the swapped-out bundle and hand its pages back to the OS: glibc keeps freed
    heap memory otherwise, and the service's RSS would stay at two bundles (1M items: 3.7
    instead of 2.4 GiB, bench/serving.py --synthetic-items)."""
    import contextlib
    import ctypes

    # the old bundle was frozen with everything else (see reload): unfreeze to collect its
    # cycles (the encoder's), once per swap, then freeze what is live again
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
