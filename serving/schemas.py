"""Response bodies of the service (request parameters are declared on the routes)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from lookalike.index.hits import Hit

MAX_K = 100


class Versions(BaseModel):
    bundle_version: str = Field(description="lookalike-recommender registry version")
    encoder: str = Field(description="encoder name/version")
    encoder_version: str
    index_version: str
    catalog_version: int = Field(description="catalogue Delta version the index snapshot reflects")
    embeddings_version: int | None = Field(
        default=None,
        description="embeddings Delta version the live searcher holds: its snapshot's, then "
        "every change-feed version applied in place since (null: a bundle from before the "
        "feed was followed)",
    )
    loaded_at: str = Field(description="when this bundle was swapped in (UTC, ISO 8601)")


class Item(BaseModel):
    item_id: str
    category: int
    category_name: str
    image_url: str


SIMILARITY_SCORE = (
    "cosine similarity of the query's and this item's embeddings (both L2-normalised: their "
    "dot product), rounded to 6 decimals: -1 to 1, higher is more alike; 1.0 for the item "
    "itself (exclude_self=false), about 1.0 for an upload of an indexed item's own photo"
)
RECOMMENDATION_SCORE = (
    "how the model ranks this item for the shopper, on the scale `mode` says. personal: the "
    "matrix-factorisation model's raw score (the dot product of shopper and item factors plus "
    "the item's bias, plus the NeuMF head when the model has one), a logit with no fixed "
    "range (e.g. 5.25): compare it only within one answer. personal+visual: "
    "(1 - blend) x that score rescaled to 0..1 over the candidates + blend x (cosine "
    "similarity to the shopper's last item + 1) / 2, in 0..1. fallback:popular-diverse: "
    "the item's popularity relative to the most popular item, in 0..1 (also the score of "
    "fallback items that top up a known shopper's list when too few unseen items remain)"
)


class ScoredItem(Item):
    """An item similar to the query (the similarity routes)."""

    score: float = Field(description=SIMILARITY_SCORE)


class RecommendedItem(Item):
    """An item recommended to a shopper (the user route): the score is not a similarity."""

    score: float = Field(description=RECOMMENDATION_SCORE)


class SimilarResponse(BaseModel):
    query: str = Field(description="the item id asked about, or 'upload'")
    k: int
    items: list[ScoredItem]
    versions: Versions


class ItemList(BaseModel):
    items: list[Item]
    total: int
    versions: Versions


class Category(BaseModel):
    id: int = Field(description="what `category` on the similarity routes takes (or the name)")
    name: str = Field(description="as the catalogue names it; `category` matches it ignoring case")
    items: int = Field(description="items of this category the live bundle indexes")


class CategoryList(BaseModel):
    categories: list[Category] = Field(description="every category of the live bundle, by id")
    versions: Versions


class FieldError(BaseModel):
    """One invalid field of a request (FastAPI's validation error, trimmed)."""

    loc: list[str | int] = Field(description="where: e.g. ['query', 'k'] or ['body', 'photo']")
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="machine-readable kind, e.g. greater_than_equal")


class Problem(BaseModel):
    """The body of every error the service sends (4xx and 5xx)."""

    detail: str = Field(description="what went wrong, in one sentence")
    errors: list[FieldError] = Field(
        default_factory=list, description="one entry per invalid field (422); empty otherwise"
    )


class Health(BaseModel):
    status: str


class ReloadResult(BaseModel):
    action: str = Field(description="swapped | unchanged | failed | no-version | unreachable")
    version: str | None = None
    reason: str | None = None
    seconds: float = 0.0
    live_version: str | None = None


class ShopperVersions(BaseModel):
    model_version: str = Field(description="lookalike-shopper-model registry version")
    interactions_version: int | None = Field(
        description="interactions Delta version the model was trained on"
    )
    users: int = Field(description="shoppers the model knows")
    items: int = Field(description="items it can recommend")
    loaded_at: str = Field(description="when this version was swapped in (UTC, ISO 8601)")


ShopperState = Literal["serving", "not deployed", "not ready"]
SHOPPER_STATE = (
    "serving: a shopper model is loaded; not deployed: the registry has no version under "
    "the alias (the user route answers 404 saying how to deploy one); not ready: one is "
    "loading or was refused, or the registry is unreachable (the user route answers 503)"
)


class ShopperStatus(BaseModel):
    """Whether the user route can answer, and why not (a similarity-only service is fine)."""

    status: ShopperState = Field(description=SHOPPER_STATE)
    reason: str | None = Field(default=None, description="why it is not serving")
    versions: ShopperVersions | None = Field(default=None, description="when serving")


class VersionReport(Versions):
    """The similarity bundle's versions, and the shopper model's state beside them."""

    shopper: ShopperStatus


class UserRecommendations(BaseModel):
    user_id: str
    k: int
    mode: str = Field(
        description="personal (the model's scores), personal+visual (blended with similarity "
        "to the shopper's last item) or fallback:popular-diverse (a shopper the model does "
        "not know: popular items, at most a few per category)"
    )
    known_user: bool
    items: list[RecommendedItem]
    versions: ShopperVersions


class Ready(BaseModel):
    ready: bool = Field(description="a similarity bundle is loaded")
    reason: str | None = None
    versions: Versions | None = None
    shopper: ShopperVersions | None = Field(
        default=None, description="the shopper model, when one is loaded (not needed for ready)"
    )
    shopper_reason: str | None = None
    shopper_status: ShopperState = Field(description=SHOPPER_STATE)


def image_url(item_id: str) -> str:
    """Where an item's photo is served."""
    return f"/v1/items/{item_id}/image"


def similar_body(query: str, k: int, hits: list[Hit], versions: dict[str, Any]) -> bytes:
    """A ``SimilarResponse`` written straight to JSON: building and validating a dozen
    pydantic models per answer cost about a sixth of a by-id request's CPU at 1M items.
    ``tests/serving/test_contract.py`` checks the bytes against the declared schema."""
    items = [
        {
            "item_id": h.item_id,
            "category": h.category,
            "category_name": h.category_name,
            "score": h.score,
            "image_url": image_url(h.item_id),
        }
        for h in hits
    ]
    body = {"query": query, "k": k, "items": items, "versions": versions}
    return json.dumps(body, separators=(",", ":")).encode()
