"""The ``category`` parameter (serving/categories.py): which values are ids and which names,
and how a name becomes an id, ambiguous and unknown names included."""

from __future__ import annotations

import re

import pytest
from fastapi import HTTPException
from pydantic_core import PydanticCustomError

from serving.categories import LISTED, NAME_PATTERN, category_id, parse_category

LABELS = {0: "T-shirt/top", 7: "Sneaker", 8: "Bag", 9: "Ankle boot"}


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("7", 7),
        ("0", 0),
        ("007", 7),
        ("255.0", 255),  # JSON Schema's integer: schemathesis sends it as one
        ("-0", 0),
        ("99999999999999999999", 99999999999999999999),  # an id no item has: empty answer
        ("Sneaker", "Sneaker"),
        ("ankle boot", "ankle boot"),
        ("7a", "7a"),
    ],
)
def test_integers_are_ids_and_anything_else_a_name(raw, parsed):
    assert parse_category(raw) == parsed and type(parse_category(raw)) is type(parsed)


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        ("-1", "greater_than_equal", "Input should be greater than or equal to 0"),
        ("", "category", "Input should be a category id or name"),
        ("  ", "category", "Input should be a category id or name"),
        # neither ASCII digits nor a name character: outside the schema, so refused
        ("+7", "category", "Input should be a category id or name"),
        ("-1.5", "category", "Input should be a category id or name"),
        (" 7 ", "category", "Input should be a category id or name"),
        (" -3", "category", "Input should be a category id or name"),
        ("1.5", "category", "Input should be a category id or name"),
        ("\u200a\n8\u2005", "category", "Input should be a category id or name"),
    ],
)
def test_negative_ids_and_empty_values_are_refused(raw, kind, message):
    with pytest.raises(PydanticCustomError) as e:
        parse_category(raw)
    assert e.value.type == kind and e.value.message() == message


@pytest.mark.parametrize("raw", ["-1", "-12", " -1", "-1_0", "-1.0", "+-1", "", "1-2"])
def test_the_schemas_name_pattern_never_allows_an_integer_spelling(raw):
    """A value the schema allows as a name is never refused with a 422 for being an id."""
    assert re.search(NAME_PATTERN, raw) is None


@pytest.mark.parametrize("raw", ["Sneaker", "T-shirt/top", "a", "x1", "Größe 42"])
def test_the_schemas_name_pattern_allows_names(raw):
    assert re.search(NAME_PATTERN, raw) and isinstance(parse_category(raw), str)


@pytest.mark.parametrize(
    ("given", "found"),
    [
        (None, None),
        (7, 7),
        (123, 123),  # an id is taken as given
        ("Sneaker", 7),
        ("sneaker", 7),
        ("SNEAKER", 7),
        ("ankle BOOT", 9),
        ("t-shirt/top", 0),
    ],
)
def test_names_are_matched_ignoring_case(given, found):
    assert category_id(LABELS, given) == found


@pytest.mark.parametrize("name", ["Sneakers", " Sneaker", "Ankle  boot", "ankle-boot", "shoe"])
def test_an_unknown_name_is_404_listing_the_known_categories(name):
    with pytest.raises(HTTPException) as e:
        category_id(LABELS, name)
    assert e.value.status_code == 404
    assert e.value.detail == (
        f"unknown category {name!r}; known categories: 'T-shirt/top' (0), 'Sneaker' (7), "
        "'Bag' (8), 'Ankle boot' (9) (GET /v1/categories lists them)"
    )


def test_an_exact_match_wins_over_other_case_variants():
    labels = {1: "Bag", 2: "BAG"}
    assert category_id(labels, "BAG") == 2 and category_id(labels, "Bag") == 1
    with pytest.raises(HTTPException) as e:
        category_id(labels, "bag")
    assert e.value.status_code == 404
    assert (
        e.value.detail
        == "category 'bag' names several categories ('Bag' (1), 'BAG' (2)): give its id"
    )


def test_a_long_list_of_known_categories_is_cut_short():
    labels = {c: f"cat{c}" for c in range(LISTED + 5)}
    with pytest.raises(HTTPException) as e:
        category_id(labels, "none")
    assert f"'cat{LISTED - 1}' ({LISTED - 1}) and 5 more (GET /v1/categories" in e.value.detail
    assert f"'cat{LISTED}'" not in e.value.detail
