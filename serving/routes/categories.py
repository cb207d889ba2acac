"""The live bundle's categories: what ``category`` on the similarity routes takes, by id or name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from serving.deps import get_live
from serving.errors import problems
from serving.schemas import Category, CategoryList
from serving.state import Live

router = APIRouter(prefix="/v1/categories", tags=["categories"])


@router.get("", response_model=CategoryList, responses=problems(503))
def categories(live: Annotated[Live, Depends(get_live)]) -> CategoryList:
    """Every category of the live similarity bundle, by id: its name and how many items it
    indexes. ``category`` on the similarity routes takes the id or the name (ignoring case)."""
    counts = live.category_counts
    return CategoryList(
        categories=[
            Category(id=c, name=name, items=counts.get(c, 0))
            for c, name in sorted(live.rec.category_labels.items())
        ],
        versions=live.versions(),
    )
