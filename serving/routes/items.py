"""Catalogue items: browse, look up, image, and "similar to this item"."""

from __future__ import annotations

import random
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel

from lookalike.index.hits import Hit
from serving.categories import CategoryParam, category_id
from serving.deps import get_live
from serving.errors import problems
from serving.schemas import (
    MAX_K,
    Item,
    ItemList,
    RecommendedItem,
    SimilarResponse,
    image_url,
    similar_body,
)
from serving.state import Live

router = APIRouter(prefix="/v1/items", tags=["items"])
LiveDep = Annotated[Live, Depends(get_live)]


def json_response(body: BaseModel) -> Response:
    """A model we built ourselves, serialized once (FastAPI would validate it again)."""
    return Response(body.model_dump_json(), media_type="application/json")


def recommended(hits: list[Hit]) -> list[RecommendedItem]:
    """A shopper's picks as response items (their scores are the shopper model's)."""
    return [
        RecommendedItem(
            item_id=h.item_id,
            category=h.category,
            category_name=h.category_name,
            score=h.score,
            image_url=image_url(h.item_id),
        )
        for h in hits
    ]


def similar_answer(query: str, k: int, hits: list[Hit], live: Live) -> Response:
    """The similar items as a ``SimilarResponse`` (written directly, see ``similar_body``)."""
    body = similar_body(query, k, hits, live.versions())
    return Response(body, media_type="application/json")


def _known(live: Live, item_id: str) -> Hit:
    try:
        return live.rec.item(item_id)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"unknown item {item_id!r}") from None


@router.get("", response_model=ItemList, responses=problems(422, 503))
def browse(
    live: LiveDep,
    limit: Annotated[int, Query(ge=1, le=200, description="how many items")] = 24,
    seed: Annotated[int | None, Query(description="same seed, same sample")] = None,
) -> ItemList:
    """A random sample of the indexed catalogue (the web page's product grid)."""
    ids = live.rec.live_ids()
    picked = random.Random(seed).sample(range(len(ids)), min(limit, len(ids)))
    items = []
    for j in picked:
        h = live.rec.item(ids[j])
        items.append(
            Item(
                item_id=h.item_id,
                category=h.category,
                category_name=h.category_name,
                image_url=image_url(h.item_id),
            )
        )
    return ItemList(items=items, total=len(ids), versions=live.versions())


@router.get("/{item_id}", response_model=Item, responses=problems(404, 422, 503))
def get_item(item_id: str, live: LiveDep) -> Item:
    h = _known(live, item_id)
    return Item(
        item_id=h.item_id,
        category=h.category,
        category_name=h.category_name,
        image_url=image_url(h.item_id),
    )


@router.get(
    "/{item_id}/image",
    response_class=Response,
    responses=problems(404, 422, 503, s404="unknown item, or no image stored for it")
    | {200: {"content": {"image/png": {}}}},
)
def get_image(item_id: str, live: LiveDep) -> Response:
    _known(live, item_id)
    png = live.photos.get(item_id) if live.photos is not None else None
    if png is None:
        raise HTTPException(status_code=404, detail=f"no image stored for {item_id!r}")
    return Response(content=png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get(
    "/{item_id}/similar",
    response_model=SimilarResponse,
    responses=problems(404, 422, 503, s404="unknown item, or no single category of that name"),
)
async def similar_to_item(
    item_id: str,
    live: LiveDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="how many results")] = 10,
    category: CategoryParam = None,
    exclude_self: Annotated[bool, Query(description="leave the item itself out")] = True,
) -> Response:
    """The k catalogue items most similar to this one (ScaNN; a category filter, by id or
    name, searches exactly inside that category). ``score``: cosine similarity, -1 to 1."""
    _known(live, item_id)
    cat = category_id(live.rec.category_labels, category)
    hits = live.rec.similar_to_items([item_id], k, exclude_self=exclude_self, category=cat)[0]
    return similar_answer(item_id, k, hits, live)
