"""Categories as the live similarity bundle knows them: the ``category`` query parameter of the
similarity routes (an id or a name) and how a name becomes an id.

A value with a character no integer spelling has (``NAME_PATTERN``) is a name; any other is an
id as JSON spells an integer (``3``, ``007``, ``255.0``), exactly as before names were
accepted: a negative one (``-3``) is the usual 422, an id no item has an empty answer. A name
is matched against the bundle's
``Recommender.category_labels`` exactly, else case-insensitively; no single match is a 404
(by-id route) or 400 (upload route) naming the known categories. Anything else (empty,
spaces, ``+3``, `` 3``, ``1.5``) is a 422: the OpenAPI schema says ``integer >= 0`` or a
string matching ``NAME_PATTERN``, so the service accepts exactly what the schema allows
(a contract test found `` 8 `` with Unicode spaces accepted as id 8).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import HTTPException, Query
from pydantic import PlainValidator, TypeAdapter, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

#: A name holds a character that no integer spelling has (whitespace, digits, ``_ . + -``).
NAME_PATTERN = r"[^\s0-9_.+-]"
#: Known categories named in a 404 at most (``GET /v1/categories`` lists them all).
LISTED = 30

_INT = TypeAdapter(int)


def parse_category(value: Any) -> int | str:
    """A category id (``int``, at least 0) or a name (``str``) from the query value."""
    text = str(value)
    if not isinstance(value, int) and re.search(NAME_PATTERN, text):
        return text
    # no name character: an integer as JSON spells one (``3``, ``-3``, ``255.0``), nothing
    # that only reads as one once stripped of spaces or a ``+`` (the schema allows neither)
    try:
        if re.search(r"\s", text) or text.startswith("+"):
            raise ValueError(text)
        number = _INT.validate_python(value)
    except (ValueError, ValidationError):
        raise PydanticCustomError("category", "Input should be a category id or name") from None
    if number < 0:
        raise PydanticCustomError(
            "greater_than_equal", "Input should be greater than or equal to {ge}", {"ge": 0}
        )
    return number


CATEGORY_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": NAME_PATTERN},
    ],
    "title": "Category",
}

CategoryParam = Annotated[
    int | str | None,
    PlainValidator(parse_category),
    WithJsonSchema(CATEGORY_SCHEMA),
    Query(
        description="only items of this category: its id, or its name (case-insensitive; "
        "`GET /v1/categories` lists both). A value that reads as an integer is an id."
    ),
]


def _quoted(labels: dict[int, str], ids: list[int]) -> str:
    return ", ".join(f"{labels[c]!r} ({c})" for c in ids)


def category_id(
    labels: dict[int, str], category: int | str | None, *, status: int = 404
) -> int | None:
    """The id the search filters on: an id or None as given, a name looked up (exact first,
    then case-insensitive). HTTP ``status`` naming the known categories when no single one
    matches (404 on the by-id route, like an unknown item; 400 on the upload route)."""
    if not isinstance(category, str):
        return category
    exact = [c for c, name in labels.items() if name == category]
    folded = category.casefold()
    found = exact or [c for c, name in labels.items() if name.casefold() == folded]
    if len(found) == 1:
        return found[0]
    if found:
        raise HTTPException(
            status_code=status,
            detail=f"category {category!r} names several categories ({_quoted(labels, found)}): "
            "give its id",
        )
    known = sorted(labels)
    more = f" and {len(known) - LISTED} more" if len(known) > LISTED else ""
    raise HTTPException(
        status_code=status,
        detail=f"unknown category {category!r}; known categories: "
        f"{_quoted(labels, known[:LISTED])}{more} (GET /v1/categories lists them)",
    )
