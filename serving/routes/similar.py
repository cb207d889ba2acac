"""'Similar to this photo': an uploaded PNG/JPEG, preprocessed exactly as the encoder expects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, Response, UploadFile

from lookalike.images import ImageRejected
from serving.categories import CategoryParam, category_id
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
    responses=problems(
        400,
        413,
        415,
        422,
        503,
        s400="not a usable image (corrupt, bomb, too small), or no single category of that name",
    ),
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
    category: CategoryParam = None,
) -> Response:
    """The k catalogue items most similar to an uploaded photo (optionally inside one
    category, by id or name). ``score``: cosine similarity, -1 to 1."""
    # 400, not the by-id route's 404: schemathesis.toml allows this route only 2xx, 400 and
    # 415 for schema-valid requests (a category name is one)
    cat = category_id(live.rec.category_labels, category, status=400)
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
        hits = live.rec.similar_to_images([data], k, category=cat)[0]
    except ImageRejected as e:
        raise HTTPException(status_code=400, detail=f"photo: {e}") from None
    return similar_answer("upload", k, hits, live)
