"""'For this shopper': per-user recommendations from the shopper-model bundle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from lookalike.shopper.interactions import USER_ID_PATTERN
from serving.deps import get_shopper_state, shopper_live
from serving.errors import problems
from serving.routes.items import json_response, recommended
from serving.schemas import MAX_K, ShopperVersions, UserRecommendations
from serving.state import ServiceState

router = APIRouter(prefix="/v1/users", tags=["shoppers"])

RESPONSES = problems(
    404,
    422,
    503,
    s404="no shopper model deployed (a similarity-only service): `detail` says how to deploy one",
    s503="a deployed shopper model is not loaded yet, or was refused",
)


@router.get("/{user_id}/recommendations", response_model=UserRecommendations, responses=RESPONSES)
def recommendations(
    state: Annotated[ServiceState, Depends(get_shopper_state)],
    user_id: Annotated[
        str, Path(pattern=USER_ID_PATTERN, description="shopper id as in the interactions table")
    ],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    exclude_seen: Annotated[bool, Query(description="leave out items they interacted with")] = True,
    blend: Annotated[
        float,
        Query(ge=0.0, le=1.0, description="weight of visual similarity to their last item"),
    ] = 0.0,
) -> Response:
    """Top-k items for a shopper. A shopper the model does not know gets the documented
    fallback (popular and visually diverse items, ``mode`` says so), never an error."""
    live = shopper_live(state)  # here, not a dependency: a malformed request is 422 first
    hits, mode = live.rec.recommend(user_id, k, exclude_seen=exclude_seen, blend=blend)
    body = UserRecommendations(
        user_id=user_id,
        k=k,
        mode=mode,
        known_user=user_id in live.rec.user_row,
        items=recommended(hits),
        versions=ShopperVersions(**live.versions()),
    )
    return json_response(body)
