"""The recommendation service: ``create_app(settings)`` wires state, routes and metrics.

lookalike serve            # uvicorn on LOOKALIKE_SERVE_HOST:PORT (127.0.0.1:8000)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lookalike.config import Settings, get_settings
from serving import errors
from serving.fast_path import FastSimilar
from serving.metrics import Metrics
from serving.metrics_middleware import MetricsMiddleware
from serving.routes import categories, items, page, shoppers, similar, system
from serving.state import Followed, ServiceState
from serving.tail import FeedFollower


def create_app(
    settings: Settings | None = None, *, watch: bool = True, follow: bool = True
) -> FastAPI:
    """A service instance. ``watch=False`` loads once at start-up and never polls (tests).
    ``follow=False`` never touches the registry: no MLflow URIs set, no start-up load, no
    watcher; both states stay empty until a caller puts bundles in (the route tests)."""
    settings = settings or get_settings()
    if follow:
        from lookalike.registry.mlflow_setup import configure

        configure(settings)
    metrics = Metrics()
    state = ServiceState(settings=settings, metrics=metrics)
    shopper = ServiceState(settings=settings, metrics=metrics, followed=Followed.shopper(settings))
    feed = FeedFollower(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for s in (state, shopper):
            if watch:
                s.start_watcher()  # first load happens on the watcher thread
            else:
                s.reload()
        if watch:
            feed.start()  # the embeddings change feed, applied in place between bundles
        yield
        feed.stop()
        for s in (state, shopper):
            s.stop_watcher()

    app = FastAPI(
        title="lookalike",
        summary="Visually similar products from the production bundle.",
        version="1",
        lifespan=lifespan if follow else None,
    )
    app.state.service = state
    app.state.shopper = shopper

    errors.install(app)
    for module in (system, items, categories, similar, shoppers, page):
        app.include_router(module.router)
    # the last middleware added runs first: metrics see the fast path's answers too
    by_id = next(r for r in app.routes if getattr(r, "endpoint", None) is items.similar_to_item)
    app.add_middleware(FastSimilar, route=by_id, live=lambda: app.state.service.live)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
