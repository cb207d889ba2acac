"""The by-id fast path (serving.fast_path) answers exactly what the FastAPI route answers,
and leaves every other request, errors included, to the route."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from serving.fast_path import FastSimilar, SimilarQuery, parse_query
from tests.support.service import ITEM_IDS, route_app, service_settings, similar_live

ITEM = ITEM_IDS[2]


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (b"", SimilarQuery()),
        (b"k=5", SimilarQuery(k=5)),
        (b"k=100&category=3&exclude_self=false", SimilarQuery(100, 3, False)),
        (b"exclude_self=true&category=0", SimilarQuery(category=0)),
    ],
)
def test_plain_parameters_are_parsed(raw, parsed):
    assert parse_query(raw) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        b"k=0",  # out of range: the route's 422
        b"k=101",
        b"k=abc",
        b"k=",
        b"k",
        b"k=%31",  # percent-encoded: FastAPI decodes it
        b"k=1&k=2",  # repeated
        b"category=-1",
        b"category=1234567890",  # longer than any category id
        b"category=Bag",  # a name: the route looks it up
        b"category=bag&k=3",
        b"category=Ankle%20boot",
        b"category=T-shirt%2Ftop",
        b"exclude_self=1",  # another spelling of a boolean
        b"exclude_self=True",
        b"k=5&seed=1",  # unknown to the route
        b"k=5&",
    ],
)
def test_anything_else_goes_to_the_route(raw):
    assert parse_query(raw) is None


@pytest.fixture(scope="module")
def live():
    return similar_live()


@pytest.fixture
def client(live, tmp_path):
    with TestClient(route_app(service_settings(tmp_path / "home"), live=live)) as c:
        yield c


def _fast(live, path: str, query: bytes) -> tuple[int, dict, bytes]:
    """The fast path alone: an inner app that fails if the request reaches it."""

    async def route(scope, receive, send):
        raise AssertionError(f"{path}?{query!r} was passed on")

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query}
    the_route = SimpleNamespace(path="/v1/items/{item_id}/similar")
    asyncio.run(FastSimilar(route, route=the_route, live=lambda: live)(scope, None, send))
    assert scope["route"] is the_route  # so the metrics label it as the route
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


@pytest.mark.parametrize(
    "query", ["", "k=3", "k=7&category=0", "k=4&exclude_self=false", "category=1&k=100"]
)
def test_the_fast_answer_is_the_routes_answer(client, live, query):
    path = f"/v1/items/{ITEM}/similar"
    status, headers, body = _fast(live, path, query.encode())
    # an unknown parameter sends the same request through FastAPI's route (which ignores it)
    routed = client.get(f"{path}?{query}&via=route")
    assert status == routed.status_code == 200
    assert headers[b"content-type"] == routed.headers["content-type"].encode()
    assert int(headers[b"content-length"]) == len(body)
    assert body == routed.content


@pytest.mark.parametrize("name", ["Bag", "bag", "BAG"])
def test_a_category_name_is_passed_on_and_answered_by_the_route(live, name):
    """A name never reaches the fast path's search: the route resolves it."""
    passed: list[bytes] = []

    async def route(scope, receive, send):
        passed.append(scope["query_string"])

    path = f"/v1/items/{ITEM}/similar"
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"category=" + name.encode(),
    }
    the_route = SimpleNamespace(path="/v1/items/{item_id}/similar")
    asyncio.run(FastSimilar(route, route=the_route, live=lambda: live)(scope, None, None))
    assert passed == [b"category=" + name.encode()] and "route" not in scope


@pytest.mark.parametrize("name", ["Bag", "bag", "Sneaker"])
def test_a_category_name_through_the_whole_app(client, live, name):
    """The same answer as by id (here through the fast path), or the route's 404."""
    r = client.get(f"/v1/items/{ITEM}/similar?k=5&category={name}")
    if name == "Sneaker":
        assert r.status_code == 404 and "known categories" in r.json()["detail"]
        return
    assert r.status_code == 200
    _, _, fast = _fast(live, f"/v1/items/{ITEM}/similar", b"k=5&category=2")
    assert r.content == fast


def test_errors_keep_the_routes_bodies(client):
    unknown = client.get("/v1/items/no-such-item/similar?k=3")
    assert unknown.status_code == 404 and "no-such-item" in unknown.json()["detail"]
    bad = client.get(f"/v1/items/{ITEM}/similar?k=0")
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "k"]


def test_no_bundle_yet_is_the_routes_503(tmp_path):
    with TestClient(route_app(service_settings(tmp_path / "home"))) as c:
        r = c.get(f"/v1/items/{ITEM}/similar")
    assert r.status_code == 503 and "not ready" in r.json()["detail"]
