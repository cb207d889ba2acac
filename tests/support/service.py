"""The service's routes over in-memory bundles: no Spark ingest, training, registry or ScaNN.

- ``similar_live()``: a REAL ``lookalike.similarity.bundle.Recommender`` over a dozen 16x16 noise
  "products" in three categories, with a pixel "encoder" (``pixel_encoder``) and a
  brute-force searcher (``BruteForce``) standing in for TensorFlow and ScaNN. Uploads therefore
  go through the real image checks (``ImageRejected``) and preprocessing, and the category
  filter and ``exclude_self`` are the real code. The bundle passes the real self-check.
- ``shopper_live()``: a ``FakeShopper`` with the part of ``ShopperRecommender`` the user route
  calls (``recommend``, ``user_row``, ``versions``), which records every call.
- ``route_app()``: the real app (routes, 422 handler, metrics middleware) from
  ``create_app(follow=False)``, with the bundles put in through ``app.dependency_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import FastAPI

from lookalike.config import Settings
from lookalike.index.hits import Hit
from lookalike.registry.encoders import embed_images
from lookalike.similarity.bundle import Recommender
from serving.deps import get_live, get_shopper_state, get_state
from serving.main import create_app
from serving.state import Followed, Live, ReloadOutcome, ServiceState
from tests.support.images import encode, noise

LOADED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = "route-test-token"
UPLOAD_LIMIT = 4096  # bytes (the settings' minimum is 1024)

CATEGORIES = {0: "T-shirt/top", 1: "Trouser", 2: "Bag"}
PER_CATEGORY = 4
ITEM_IDS = [f"fm-test-{j:05d}" for j in range(len(CATEGORIES) * PER_CATEGORY)]
NO_IMAGE = ITEM_IDS[-1]  # indexed, but the catalogue has no picture of it

INPUT_SIZE, CHANNELS = 8, 1
DIMENSION = INPUT_SIZE * INPUT_SIZE * CHANNELS
BUNDLE_VERSION = "7"
MANIFEST: dict[str, Any] = {
    "index_version": "v000007",
    "catalog_version": 3,
    "embeddings_version": 12,
    "dimension": DIMENSION,
    "encoder": {
        "name": "fake-pixels",
        "version": "2",
        "input_size": INPUT_SIZE,
        "channels": CHANNELS,
        "embedding_size": DIMENSION,
    },
}


def category_of(item_id: str) -> int:
    return ITEM_IDS.index(item_id) // PER_CATEGORY


def item_png(item_id: str) -> bytes:
    """The catalogue photo of an item (distinct noise per item)."""
    return encode(noise(ITEM_IDS.index(item_id)))


def pixel_encoder(x: np.ndarray) -> np.ndarray:
    """An "encoder" for ``(n, size, size, channels)`` uint8 input: the centred pixels, unit
    length. The same picture always gives the same vector, as the real one does."""
    flat = x.reshape(len(x), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return flat / np.maximum(norm, 1e-9)


class BruteForce:
    """The calls the Recommender makes on a ScaNN searcher, by exact dot product."""

    def __init__(self, vectors: np.ndarray, ids: list[str]) -> None:
        self.vectors, self.ids = vectors, ids

    def size(self) -> int:
        return len(self.ids)

    def search_batched(
        self, queries: np.ndarray, final_num_neighbors: int
    ) -> tuple[list[list[str]], np.ndarray]:
        sims = queries @ self.vectors.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :final_num_neighbors]
        return [[self.ids[j] for j in row] for row in top], np.take_along_axis(sims, top, 1)

    def search(self, query: np.ndarray, final_num_neighbors: int) -> tuple[list[str], np.ndarray]:
        ids, dist = self.search_batched(query[None, :], final_num_neighbors)
        return ids[0], dist[0]


def similar_live(version: str = BUNDLE_VERSION) -> Live:
    """A similarity bundle: the real Recommender over the fake catalogue, self-checked."""
    pngs = [item_png(i) for i in ITEM_IDS]
    vectors = embed_images(pixel_encoder, pngs, input_size=INPUT_SIZE, channels=CHANNELS)
    cats = [category_of(i) for i in ITEM_IDS]
    items = pa.table(
        {
            "item_id": ITEM_IDS,
            "category": pa.array(cats, pa.int32()),
            "category_name": [CATEGORIES[c] for c in cats],
        }
    )
    rec = Recommender(
        pixel_encoder, BruteForce(vectors, ITEM_IDS), vectors, items, dict(MANIFEST), version
    )
    rec.check()
    images = {i: png for i, png in zip(ITEM_IDS, pngs, strict=True) if i != NO_IMAGE}
    return Live(
        rec=rec, bundle_version=version, loaded_at=LOADED_AT, photos=images
    )  # a dict answers .get like CatalogPhotos


class FakeShopper:
    """Per-shopper picks from a fixed ranking: each known shopper ranks the catalogue from a
    different starting point; an unknown one gets the first items (the "popular" fallback)."""

    def __init__(
        self, seen: dict[str, list[str]], version: str = "3", interactions_version: int = 5
    ) -> None:
        self.item_ids = list(ITEM_IDS)
        self.user_ids = list(seen)
        self.user_row = {u: j for j, u in enumerate(self.user_ids)}
        self.seen_items = seen
        self.bundle_version = version
        self.interactions_version = interactions_version
        self.calls: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.item_ids)

    def versions(self) -> dict[str, Any]:
        return {
            "model_version": self.bundle_version,
            "interactions_version": self.interactions_version,
            "users": len(self.user_ids),
            "items": len(self.item_ids),
        }

    def _hits(self, ids: list[str]) -> list[Hit]:
        n = len(ids)
        return [
            Hit(i, category_of(i), CATEGORIES[category_of(i)], round(1.0 - r / n, 6))
            for r, i in enumerate(ids)
        ]

    def recommend(
        self, user_id: str, k: int = 10, *, exclude_seen: bool = True, blend: float = 0.0
    ) -> tuple[list[Hit], str]:
        self.calls.append(
            {"user_id": user_id, "k": k, "exclude_seen": exclude_seen, "blend": blend}
        )
        row = self.user_row.get(user_id)
        if row is None:
            return self._hits(self.item_ids[:k]), "fallback:popular-diverse"
        start = 3 * (row + 1)
        ranking = self.item_ids[start:] + self.item_ids[:start]
        skip = set(self.seen_items[user_id]) if exclude_seen else set()
        picks = [i for i in ranking if i not in skip][:k]
        return self._hits(picks), "personal+visual" if blend > 0 else "personal"


SEEN = {"u001": ITEM_IDS[3:6], "u002": ITEM_IDS[:1]}


def shopper_live(version: str = "3") -> Live:
    return Live(rec=FakeShopper(SEEN, version), bundle_version=version, loaded_at=LOADED_AT)


def service_settings(home, **overrides: Any) -> Settings:
    """Settings for a route-test app (``home`` is never written: the app follows nothing)."""
    values = {"serve_admin_token": TOKEN, "serve_max_upload_bytes": UPLOAD_LIMIT} | overrides
    return Settings(home=home, **values)


@dataclass
class PinnedState(ServiceState):
    """A ServiceState holding the bundle it was given and never following the registry:
    ``reload`` records its ``force`` and answers ``outcome`` (default: unchanged)."""

    outcome: ReloadOutcome | None = None
    reloads: list[bool] = field(default_factory=list)

    def reload(self, *, force: bool = False) -> ReloadOutcome:
        self.reloads.append(force)
        if self.outcome is not None:
            return self.outcome
        return ReloadOutcome("unchanged", self.live.bundle_version if self.live else None)


def route_app(settings: Settings, *, live: Live | None = None, shopper: Live | None = None):
    """The service app with no lifespan and no registry (``create_app(follow=False)``).

    A bundle given is served through ``dependency_overrides``: ``get_live`` answers the
    similarity one, ``get_state`` (or ``get_shopper_state``) a ``PinnedState`` holding it
    that shares the app's metrics. A bundle left out keeps the real dependencies over the
    app's own never-loaded state, so those routes answer 503 exactly as a service that has
    not loaded anything yet (its ``last_error`` is the reason given).
    """
    app: FastAPI = create_app(settings, follow=False)
    metrics = app.state.service.metrics
    if live is not None:
        state = PinnedState(settings=settings, metrics=metrics, live=live)
        app.state.service = state  # what the by-id fast path (serving.fast_path) reads
        app.dependency_overrides[get_state] = lambda: state
        app.dependency_overrides[get_live] = lambda: live
    if shopper is not None:
        followed = Followed.shopper(settings)
        shop = PinnedState(settings=settings, metrics=metrics, followed=followed, live=shopper)
        app.dependency_overrides[get_shopper_state] = lambda: shop
    return app


def state_of(app: FastAPI, dependency=get_state) -> ServiceState:
    """The state a route sees for ``get_state`` / ``get_shopper_state`` (override or own)."""
    override = app.dependency_overrides.get(dependency)
    if override is not None:
        return override()
    return app.state.service if dependency is get_state else app.state.shopper
