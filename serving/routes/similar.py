"""'Similar to this photo': an uploaded PNG/JPEG, preprocessed exactly as the encoder expects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, Response, UploadFile

from lookalike.images import ImageRejected
from serving.deps import get_live, get_state
from serving.routes.items import NOT_READY, json_response, scored
from serving.schemas import MAX_K, Problem, SimilarResponse
from serving.state import Live, ServiceState

router = APIRouter(prefix="/v1", tags=["similar"])
ACCEPTED = {"image/png", "image/jpeg", "image/jpg"}


@router.post(
    "/similar",
    response_model=SimilarResponse,
    responses=NOT_READY
    | {
        400: {"model": Problem, "description": "not a usable image (corrupt, bomb, too small)"},
        413: {"model": Problem, "description": "upload larger than the limit"},
        415: {"model": Problem, "description": "not image/png or image/jpeg"},
    },
)
def similar_to_photo(
    state: Annotated[ServiceState, Depends(get_state)],
    live: Annotated[Live, Depends(get_live)],
    photo: Annotated[UploadFile, File(description="product photo, PNG or JPEG, any size")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    category: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    limit = state.settings.serve_max_upload_bytes
    ctype = (photo.content_type or "").split(";")[0].strip().lower()
    if ctype not in ACCEPTED:
        got = ctype or "missing"
        raise HTTPException(
            status_code=415, detail=f"content type {got!r}: send image/png or image/jpeg"
        )
    data = photo.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status_code=413, detail=f"upload larger than {limit} bytes")
    try:
        hits = live.rec.similar_to_images([data], k, category=category)[0]
    except ImageRejected as e:
        raise HTTPException(status_code=400, detail=f"photo: {e}") from None
    body = SimilarResponse(query="upload", k=k, items=scored(hits), versions=live.versions())
    return json_response(body)
