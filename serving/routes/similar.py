"""'Similar to this photo': an uploaded PNG/JPEG, preprocessed exactly as the encoder expects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, Response, UploadFile

from lookalike.images import ImageRejected
from serving.deps import get_live, get_state
from serving.errors import problems
from serving.routes.items import similar_answer
from serving.schemas import MAX_K, SimilarResponse
from serving.state import Live, ServiceState

router = APIRouter(prefix="/v1", tags=["similar"])
ACCEPTED = {"image/png", "image/jpeg", "image/jpg"}
#: part content types that say nothing about the format: the bytes decide
GENERIC = {"", "application/octet-stream", "binary/octet-stream", "*/*", "image/*"}
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG


def sniffed_image(data: bytes) -> bool:
    """The bytes start like a PNG or a JPEG (clients often send no part content type)."""
    return data.startswith(SIGNATURES)


@router.post(
    "/similar",
    response_model=SimilarResponse,
    responses=problems(400, 413, 415, 422, 503),
)
def similar_to_photo(
    state: Annotated[ServiceState, Depends(get_state)],
    live: Annotated[Live, Depends(get_live)],
    photo: Annotated[
        UploadFile,
        File(
            description="product photo, PNG or JPEG, any size; a part without a content type "
            "(or application/octet-stream) is recognised from its bytes"
        ),
    ],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    category: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    limit = state.settings.serve_max_upload_bytes
    ctype = (photo.content_type or "").split(";")[0].strip().lower()
    if ctype not in ACCEPTED | GENERIC:
        raise HTTPException(
            status_code=415, detail=f"content type {ctype!r}: send image/png or image/jpeg"
        )
    data = photo.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status_code=413, detail=f"upload larger than {limit} bytes")
    if ctype in GENERIC and not sniffed_image(data):
        got = ctype or "no content type"
        raise HTTPException(
            status_code=415, detail=f"{got} and the bytes are not a PNG or JPEG: send one"
        )
    try:
        hits = live.rec.similar_to_images([data], k, category=category)[0]
    except ImageRejected as e:
        raise HTTPException(status_code=400, detail=f"photo: {e}") from None
    return similar_answer("upload", k, hits, live)
