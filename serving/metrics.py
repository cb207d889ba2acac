"""Prometheus metrics of one service instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lookalike_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "lookalike_request_seconds",
            "Request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # requests the service has begun and not answered yet: what a SIGTERM waits for
        self.in_flight = Gauge(
            "lookalike_requests_in_flight", "HTTP requests being answered", registry=r
        )
        # `model`: which followed registered model (similar | shopper)
        m = ["model"]
        self.reloads = Counter("lookalike_reloads", "Versions swapped in", m, registry=r)
        self.reload_failures = Counter(
            "lookalike_reload_failures", "Versions refused (kept the old one)", m, registry=r
        )
        self.poll_errors = Counter(
            "lookalike_registry_poll_errors",
            "Alias polls that could not reach MLflow",
            m,
            registry=r,
        )
        self.index_size = Gauge("lookalike_index_items", "Items in the live index", m, registry=r)
        self.live_version = Gauge(
            "lookalike_live_bundle_version", "Live version (registry number)", m, registry=r
        )
        # the embeddings change feed, applied in place between bundles (serving/tail.py)
        self.feed_version = Gauge(
            "lookalike_feed_embeddings_version",
            "embeddings table version the live searcher holds",
            registry=r,
        )
        self.feed_changes = Counter(
            "lookalike_feed_changes", "Changes applied in place", ["op"], registry=r
        )
        self.feed_skipped = Counter(
            "lookalike_feed_skipped",
            "Changes refused (logged with the reason)",
            ["kind"],
            registry=r,
        )
        self.feed_errors = Counter(
            "lookalike_feed_errors", "Feed steps that failed (retried next poll)", registry=r
        )
        self.feed_apply_seconds = Histogram(
            "lookalike_feed_step_seconds",
            "Seconds to read and apply one step of the feed",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
