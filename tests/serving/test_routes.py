"""Every route of the service, success and error cases, in seconds: FastAPI's TestClient over
the real app with in-memory bundles (tests/support/service.py) put in through
``dependency_overrides``. The full path (Spark ingest, training, registry, hot swap) is
tests/integration/test_service.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lookalike.shopper.interactions import USER_ID_PATTERN
from serving.deps import get_shopper_state
from serving.schemas import MAX_K
from serving.state import Live, ReloadOutcome
from tests.support.images import encode, noise, png_declaring
from tests.support.service import (
    BUNDLE_VERSION,
    CATEGORIES,
    ITEM_IDS,
    LOADED_AT,
    NO_IMAGE,
    PER_CATEGORY,
    SEEN,
    TOKEN,
    UPLOAD_LIMIT,
    item_png,
    route_app,
    service_settings,
    shopper_live,
    similar_live,
    state_of,
)

ITEM = ITEM_IDS[2]  # category 0
VERSIONS = {
    "bundle_version": BUNDLE_VERSION,
    "encoder": "fake-pixels/2",
    "encoder_version": "2",
    "index_version": "v000007",
    "catalog_version": 3,
    "embeddings_version": 12,
    "loaded_at": LOADED_AT.isoformat(),
}
SHOPPER_VERSIONS = {
    "model_version": "3",
    "interactions_version": 5,
    "users": len(SEEN),
    "items": len(ITEM_IDS),
    "loaded_at": LOADED_AT.isoformat(),
}
NOT_LOADED = "no 'production' version of '{}' loaded yet"


@pytest.fixture(scope="module")
def bundle() -> Live:
    return similar_live()


@pytest.fixture
def settings(tmp_path):
    return service_settings(tmp_path / "home")


def _client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:  # raise_server_exceptions: a 500 fails the test loudly
        yield c


@pytest.fixture
def app(settings, bundle) -> FastAPI:
    return route_app(settings, live=bundle, shopper=shopper_live())


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    yield from _client(app)


@pytest.fixture
def empty(settings) -> Iterator[TestClient]:
    """A service that has loaded nothing yet (no similarity bundle, no shopper model)."""
    yield from _client(route_app(settings))


def _detail(r, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["detail"]


# ---------------------------------------------------------------- system


def test_healthz_is_ok_even_before_anything_is_loaded(client, empty):
    for c in (client, empty):
        r = c.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_reports_both_models(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {
        "ready": True,
        "reason": None,
        "versions": VERSIONS,
        "shopper": SHOPPER_VERSIONS,
        "shopper_reason": None,
        "shopper_status": "serving",
    }


def test_readyz_is_ready_without_a_shopper_model_and_says_why_it_has_none(settings, bundle):
    with TestClient(route_app(settings, live=bundle)) as c:
        body = c.get("/readyz").json()
    assert body["ready"] is True and body["versions"] == VERSIONS
    assert body["shopper"] is None and body["shopper_status"] == "not ready"
    assert body["shopper_reason"] == NOT_LOADED.format("lookalike-shopper-model")


def test_readyz_is_503_with_the_reason_until_a_bundle_is_loaded(empty):
    r = empty.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {
        "ready": False,
        "reason": NOT_LOADED.format("lookalike-recommender"),
        "versions": None,
        "shopper": None,
        "shopper_reason": NOT_LOADED.format("lookalike-shopper-model"),
        "shopper_status": "not ready",
    }


def test_readyz_is_503_but_shows_a_loaded_shopper_model(settings):
    with TestClient(route_app(settings, shopper=shopper_live())) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["ready"] is False
    assert r.json()["shopper"] == SHOPPER_VERSIONS and r.json()["shopper_reason"] is None


def test_not_ready_reason_is_the_last_load_error(settings):
    app = route_app(settings)
    app.state.service.last_error = "lookalike-recommender version 4 failed to load: boom"
    with TestClient(app) as c:
        assert c.get("/readyz").json()["reason"] == app.state.service.last_error
        assert (
            _detail(c.get(f"/v1/items/{ITEM}"), 503) == f"not ready: {app.state.service.last_error}"
        )


def test_version(client, empty):
    r = client.get("/v1/version")
    assert r.status_code == 200
    shopper = {"status": "serving", "reason": None, "versions": SHOPPER_VERSIONS}
    assert r.json() == VERSIONS | {"shopper": shopper}
    assert _detail(empty.get("/v1/version"), 503) == "not ready: " + NOT_LOADED.format(
        "lookalike-recommender"
    )


def test_metrics_count_requests_per_route_template_and_status(client):
    client.get(f"/v1/items/{ITEM}/similar")
    client.get(f"/v1/items/{ITEM}/similar", params={"k": 3})
    client.get("/v1/items/nope")
    client.get("/no/such/route")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    similar = 'lookalike_requests_total{method="GET",route="/v1/items/{item_id}/similar",'
    assert similar + 'status="200"} 2.0' in text
    assert (
        'lookalike_requests_total{method="GET",route="/v1/items/{item_id}",status="404"} 1.0'
        in text
    )
    assert 'lookalike_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert (
        'lookalike_request_seconds_count{method="GET",route="/v1/items/{item_id}/similar"} 2.0'
        in text
    )


def test_unknown_route_is_a_plain_404(client):
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found", "errors": []}


def test_a_wrong_method_is_405_with_allow(client):
    r = client.delete("/v1/items")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json() == {"detail": "Method Not Allowed", "errors": []}


def test_an_unexpected_error_is_a_500_problem_not_a_traceback(settings, bundle, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(bundle.rec, "similar_to_items", boom)
    with TestClient(route_app(settings, live=bundle), raise_server_exceptions=False) as c:
        r = c.get(f"/v1/items/{ITEM}/similar")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error: RuntimeError", "errors": []}


def test_every_error_response_in_the_schema_is_the_problem_body(client):
    """One error model on every route: what the handlers send (``serving/errors.py``)."""
    spec = client.get("/openapi.json").json()
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["detail"] and set(problem["properties"]) == {"detail", "errors"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = {c for c in op["responses"] if c.startswith(("4", "5"))}
            assert "500" in codes, (path, method)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in codes, (path, method)
            for code in codes - ({"503"} if path == "/readyz" else set()):
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Problem", (path, method, code)


def test_page_is_the_static_html(client, empty):
    for c in (client, empty):  # the page itself needs no bundle
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<title>lookalike</title>" in r.text


def test_openapi_lists_every_route_with_only_its_own_parameters(client):
    spec = client.get("/openapi.json").json()
    params = {
        (path, method): sorted(p["name"] for p in op.get("parameters", []))
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    assert params == {
        ("/healthz", "get"): [],
        ("/readyz", "get"): [],
        ("/metrics", "get"): [],
        ("/v1/version", "get"): [],
        ("/v1/admin/reload", "post"): ["authorization", "model"],
        ("/v1/items", "get"): ["limit", "seed"],
        ("/v1/items/{item_id}", "get"): ["item_id"],
        ("/v1/items/{item_id}/image", "get"): ["item_id"],
        ("/v1/categories", "get"): [],
        ("/v1/items/{item_id}/similar", "get"): ["category", "exclude_self", "item_id", "k"],
        ("/v1/similar", "post"): ["category", "k"],
        ("/v1/users/{user_id}/recommendations", "get"): ["blend", "exclude_seen", "k", "user_id"],
    }


# ---------------------------------------------------------------- admin reload


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "admin: send Authorization: Bearer <token>"),
        ({"Authorization": f"Basic {TOKEN}"}, 401, "admin: send Authorization: Bearer <token>"),
        ({"Authorization": "Bearer"}, 401, "admin: send Authorization: Bearer <token>"),
        ({"Authorization": "Bearer wrong"}, 403, "admin: wrong token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403, "admin: wrong token"),
    ],
)
def test_admin_reload_refuses_without_the_right_token(app, client, headers, status, message):
    r = client.post("/v1/admin/reload", headers=headers)
    assert _detail(r, status) == message
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    assert state_of(app).reloads == [] and state_of(app, get_shopper_state).reloads == []


def test_admin_reload_is_disabled_without_a_configured_token(tmp_path, bundle):
    settings = service_settings(tmp_path / "home", serve_admin_token=None)
    with TestClient(route_app(settings, live=bundle)) as c:
        r = c.post("/v1/admin/reload", headers={"Authorization": "Bearer anything"})
    assert _detail(r, 403) == "admin: no token configured on this service"


def test_admin_reload_forces_a_reload_of_the_similarity_bundle(app, client):
    r = client.post("/v1/admin/reload", headers={"Authorization": f"bearer  {TOKEN} "})
    assert r.status_code == 200
    assert r.json() == {
        "action": "unchanged",
        "version": BUNDLE_VERSION,
        "reason": None,
        "seconds": 0.0,
        "live_version": BUNDLE_VERSION,
    }
    assert state_of(app).reloads == [True]
    assert state_of(app, get_shopper_state).reloads == []


def test_admin_reload_of_the_shopper_model_reports_a_refused_version(app, client):
    shopper = state_of(app, get_shopper_state)
    shopper.outcome = ReloadOutcome("failed", "4", "IndexVersionError: damaged", 0.25)
    r = client.post(
        "/v1/admin/reload",
        params={"model": "shopper"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 200
    assert r.json() == {
        "action": "failed",
        "version": "4",
        "reason": "IndexVersionError: damaged",
        "seconds": 0.25,
        "live_version": "3",  # the old one keeps serving
    }
    assert shopper.reloads == [True] and state_of(app).reloads == []


def test_admin_reload_rejects_an_unknown_model(client):
    r = client.post(
        "/v1/admin/reload", params={"model": "bogus"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert _detail(r, 422) == "model: Input should be 'similar' or 'shopper'"


# ---------------------------------------------------------------- items


def test_browse_samples_the_catalogue_reproducibly(client):
    r = client.get("/v1/items", params={"limit": 5, "seed": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == len(ITEM_IDS) and body["versions"] == VERSIONS
    assert len(body["items"]) == 5 and len({i["item_id"] for i in body["items"]}) == 5
    for item in body["items"]:
        assert item["image_url"] == f"/v1/items/{item['item_id']}/image"
        assert item["category_name"] == CATEGORIES[item["category"]]
    assert client.get("/v1/items", params={"limit": 5, "seed": 1}).json() == body
    assert len(client.get("/v1/items").json()["items"]) == len(ITEM_IDS)  # default 24, capped
    everything = client.get("/v1/items", params={"limit": 200}).json()["items"]
    assert sorted(i["item_id"] for i in everything) == ITEM_IDS


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
        ({"limit": 201}, "limit: Input should be less than or equal to 200"),
        ({"seed": "x"}, "seed: Input should be a valid integer"),
    ],
)
def test_browse_rejects_bad_parameters(client, params, message):
    r = client.get("/v1/items", params=params)
    assert _detail(r, 422).startswith(message)
    assert r.json()["errors"][0]["loc"][-1] == next(iter(params))


def test_item_lookup(client):
    r = client.get(f"/v1/items/{ITEM}")
    assert r.status_code == 200
    assert r.json() == {
        "item_id": ITEM,
        "category": 0,
        "category_name": CATEGORIES[0],
        "image_url": f"/v1/items/{ITEM}/image",
    }


def test_item_image_is_the_stored_png(client):
    r = client.get(f"/v1/items/{ITEM}/image")
    assert r.status_code == 200 and r.content == item_png(ITEM)
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "max-age=3600"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/items/nope", "unknown item 'nope'"),
        ("/v1/items/nope/image", "unknown item 'nope'"),
        ("/v1/items/nope/similar", "unknown item 'nope'"),
        ("/v1/items/a%20b/similar", "unknown item 'a b'"),
        (f"/v1/items/{NO_IMAGE}/image", f"no image stored for {NO_IMAGE!r}"),
    ],
)
def test_unknown_items_and_missing_images_are_404(client, path, message):
    assert _detail(client.get(path), 404) == message


@pytest.mark.parametrize(
    "path",
    [
        "/v1/items",
        f"/v1/items/{ITEM}",
        f"/v1/items/{ITEM}/image",
        f"/v1/items/{ITEM}/similar",
        f"/v1/items/{ITEM}/similar?category=Bag",
        "/v1/categories",
    ],
)
def test_item_routes_are_503_until_a_bundle_is_loaded(empty, path):
    expected = "not ready: " + NOT_LOADED.format("lookalike-recommender")
    assert _detail(empty.get(path), 503) == expected


def test_similar_to_an_item(client):
    r = client.get(f"/v1/items/{ITEM}/similar", params={"k": 7})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["query"] == ITEM and body["k"] == 7 and body["versions"] == VERSIONS
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 7 and len(set(ids)) == 7 and ITEM not in ids  # exclude_self by default
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True) and max(scores) < 0.999
    for i in body["items"]:
        assert i["category_name"] == CATEGORIES[i["category"]]
        assert i["image_url"] == f"/v1/items/{i['item_id']}/image"
    assert len(client.get(f"/v1/items/{ITEM}/similar").json()["items"]) == 10  # default k


def test_similar_to_an_item_including_itself(client):
    body = client.get(f"/v1/items/{ITEM}/similar", params={"k": 3, "exclude_self": False}).json()
    assert body["items"][0]["item_id"] == ITEM and body["items"][0]["score"] == 1.0
    assert len(body["items"]) == 3


def test_similar_to_an_item_inside_one_category(client):
    body = client.get(f"/v1/items/{ITEM}/similar", params={"k": 10, "category": 2}).json()
    # the exact in-category search: every other item of the category, never another one
    assert {i["category"] for i in body["items"]} == {2}
    assert len(body["items"]) == PER_CATEGORY
    own = client.get(f"/v1/items/{ITEM}/similar", params={"category": 0}).json()["items"]
    assert len(own) == PER_CATEGORY - 1 and ITEM not in {i["item_id"] for i in own}
    # a category with no items: an empty answer, not an error
    none = client.get(f"/v1/items/{ITEM}/similar", params={"category": 99})
    assert none.status_code == 200 and none.json()["items"] == []


@pytest.mark.parametrize(("k", "found"), [(1, 1), (MAX_K, len(ITEM_IDS) - 1)])
def test_similar_k_bounds_are_inclusive(client, k, found):
    r = client.get(f"/v1/items/{ITEM}/similar", params={"k": k})
    assert r.status_code == 200 and r.json()["k"] == k and len(r.json()["items"]) == found


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": 0}, "k: Input should be greater than or equal to 1"),
        ({"k": MAX_K + 1}, f"k: Input should be less than or equal to {MAX_K}"),
        ({"k": "x"}, "k: Input should be a valid integer"),
        ({"k": 2.5}, "k: Input should be a valid integer"),
        ({"category": -1}, "category: Input should be greater than or equal to 0"),
        ({"exclude_self": "maybe"}, "exclude_self: Input should be a valid boolean"),
    ],
)
def test_similar_to_an_item_rejects_bad_parameters(client, params, message):
    r = client.get(f"/v1/items/{ITEM}/similar", params=params)
    assert _detail(r, 422).startswith(message)
    assert r.json()["errors"]  # FastAPI's usual details, too


# ---------------------------------------------------------------- categories

BAG = next(c for c, name in CATEGORIES.items() if name == "Bag")
KNOWN = "'T-shirt/top' (0), 'Trouser' (1), 'Bag' (2)"


def test_categories_lists_the_live_bundles_categories_with_their_sizes(client):
    r = client.get("/v1/categories")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "categories": [
            {"id": c, "name": name, "items": PER_CATEGORY} for c, name in CATEGORIES.items()
        ],
        "versions": VERSIONS,
    }


def test_categories_route_is_declared_with_its_response_model(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/categories"]["get"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/CategoryList"}
    assert set(spec["components"]["schemas"]["Category"]["properties"]) == {"id", "name", "items"}
    assert {"200", "500", "503"} == set(op["responses"])


@pytest.mark.parametrize("name", ["Bag", "bag", "BAG", "bAg"])
def test_similar_to_an_item_inside_a_category_given_by_name(client, name):
    by_name = client.get(f"/v1/items/{ITEM}/similar", params={"k": 10, "category": name})
    by_id = client.get(f"/v1/items/{ITEM}/similar", params={"k": 10, "category": BAG})
    assert by_name.status_code == 200, by_name.text
    assert by_name.content == by_id.content
    assert {i["category_name"] for i in by_name.json()["items"]} == {"Bag"}
    assert len(by_name.json()["items"]) == PER_CATEGORY


def test_a_category_name_with_a_slash_and_an_id_spelled_as_json_spells_it(client):
    tops = client.get(f"/v1/items/{ITEM}/similar", params={"category": "t-shirt/TOP"}).json()
    assert {i["category"] for i in tops["items"]} == {0}
    for spelling in ("2", "02", "2.0"):  # integers, as the schema's integer allows them
        r = client.get(f"/v1/items/{ITEM}/similar", params={"category": spelling})
        assert {i["category"] for i in r.json()["items"]} == {2}, spelling
    # only once stripped of spaces or a sign: outside the schema, refused (a contract test
    # found Unicode spaces around an 8 accepted as id 8)
    for spelling in ("+2", " 2", "\u200a\n8\u2005", "1.5"):
        r = client.get(f"/v1/items/{ITEM}/similar", params={"category": spelling})
        assert r.status_code == 422, (spelling, r.text)


@pytest.mark.parametrize("name", ["Sneaker", "Ba g", "Bag ", "1.5x", "Bags"])
def test_an_unknown_category_name_is_404_naming_the_known_ones(client, name):
    detail = _detail(client.get(f"/v1/items/{ITEM}/similar", params={"category": name}), 404)
    assert detail == (
        f"unknown category {name!r}; known categories: {KNOWN} (GET /v1/categories lists them)"
    )


def test_an_unknown_item_is_404_before_its_category_is_looked_up(client):
    r = client.get("/v1/items/nope/similar", params={"category": "Sneaker"})
    assert _detail(r, 404) == "unknown item 'nope'"


def test_an_empty_category_is_422(client):
    r = client.get(f"/v1/items/{ITEM}/similar", params={"category": ""})
    assert _detail(r, 422) == "category: Input should be a category id or name"


def test_the_schema_says_category_is_an_id_or_a_name(client):
    spec = client.get("/openapi.json").json()
    for path, method in (("/v1/items/{item_id}/similar", "get"), ("/v1/similar", "post")):
        op = spec["paths"][path][method]
        (param,) = [p for p in op["parameters"] if p["name"] == "category"]
        assert param["schema"]["anyOf"] == [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"[^\s0-9_.+-]"},
        ]
        assert "name" in param["description"]
        assert "category" in op["responses"]["404" if method == "get" else "400"]["description"]


def test_each_routes_score_is_described_as_what_it_is(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    similar = schemas["ScoredItem"]["properties"]["score"]["description"]
    assert similar.startswith("cosine similarity") and "-1 to 1" in similar
    items = schemas["UserRecommendations"]["properties"]["items"]["items"]
    assert items == {"$ref": "#/components/schemas/RecommendedItem"}
    shopper = schemas["RecommendedItem"]["properties"]["score"]["description"]
    assert "matrix-factorisation" in shopper and "no fixed range" in shopper
    assert "cosine similarity of" not in shopper


# ---------------------------------------------------------------- similar to a photo


def _upload(c: TestClient, data: bytes, ctype: str = "image/png", **params):
    return c.post("/v1/similar", files={"photo": ("photo", data, ctype)}, params=params)


def test_a_photo_of_a_catalogue_item_finds_that_item_first(client):
    r = _upload(client, item_png(ITEM))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "upload" and body["k"] == 10 and body["versions"] == VERSIONS
    assert len(body["items"]) == 10
    assert body["items"][0]["item_id"] == ITEM and body["items"][0]["score"] > 0.999


@pytest.mark.parametrize("category", ["bag", "Bag", BAG])
def test_a_photo_inside_a_category_given_by_name_or_id(client, category):
    r = _upload(client, item_png(ITEM), k=10, category=category)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == PER_CATEGORY and {i["category_name"] for i in items} == {"Bag"}


def test_a_photo_with_an_unknown_category_name_is_400_naming_the_known_ones(client):
    """400 here (the upload route's "cannot answer this request" status), 404 by id."""
    detail = _detail(_upload(client, item_png(ITEM), category="Sneaker"), 400)
    assert detail.startswith(f"unknown category 'Sneaker'; known categories: {KNOWN}")


def test_a_jpeg_photo_of_another_size_and_a_category_filter(client):
    jpeg = encode(noise(99, size=40, channels=3), "JPEG")
    r = _upload(client, jpeg, "image/jpeg", k=3, category=1)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 3 and {i["category"] for i in items} == {1}


@pytest.mark.parametrize("ctype", ["image/jpg", "IMAGE/PNG", "image/png; charset=binary"])
def test_accepted_content_type_spellings(client, ctype):
    assert _upload(client, item_png(ITEM), ctype, k=1).status_code == 200


@pytest.mark.parametrize(
    ("ctype", "got"),
    [
        ("text/plain", "text/plain"),
        ("image/gif", "image/gif"),
        ("application/pdf", "application/pdf"),
    ],
)
def test_other_content_types_are_415(client, ctype, got):
    r = _upload(client, item_png(ITEM), ctype)
    assert _detail(r, 415) == f"content type {got!r}: send image/png or image/jpeg"


def _untyped_part(c: TestClient, data: bytes):
    """A multipart upload whose part has no Content-Type header (curl -F without type=...)."""
    body = (
        b"--B\r\n"
        b'Content-Disposition: form-data; name="photo"; filename="x"\r\n\r\n'
        + data
        + b"\r\n--B--\r\n"
    )
    return c.post(
        "/v1/similar", content=body, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )


def test_a_part_without_a_content_type_is_recognised_from_its_bytes(client):
    for data in (item_png(ITEM), encode(noise(5, size=40, channels=3), "JPEG")):
        r = _untyped_part(client, data)
        assert r.status_code == 200, r.text
    assert _untyped_part(client, item_png(ITEM)).json()["items"][0]["item_id"] == ITEM
    r = _untyped_part(client, b"GIF89a not accepted")
    assert _detail(r, 415) == "no content type and the bytes are not a PNG or JPEG: send one"


@pytest.mark.parametrize("ctype", ["application/octet-stream", "image/*"])
def test_a_generic_content_type_is_recognised_from_its_bytes(client, ctype):
    assert _upload(client, item_png(ITEM), ctype, k=1).status_code == 200
    r = _upload(client, b"%PDF-1.4", ctype)
    assert _detail(r, 415) == f"{ctype} and the bytes are not a PNG or JPEG: send one"


def test_uploads_over_the_limit_are_413(client):
    r = _upload(client, b"\x89PNG" + bytes(UPLOAD_LIMIT - 3))
    assert _detail(r, 413) == f"upload larger than {UPLOAD_LIMIT} bytes"
    # exactly at the limit it is read and judged as an image (here: not one)
    at_limit = _upload(client, b"\x89PNG" + bytes(UPLOAD_LIMIT - 4))
    assert _detail(at_limit, 400) == "photo: not an image (unrecognised file content)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "photo: empty file"),
        (b"hello", "photo: not an image (unrecognised file content)"),
        (encode(noise(1, size=4)), "photo: image too small (4x4, min side 8)"),
        (encode(noise(1), "GIF"), "photo: unsupported image format GIF (accepted: PNG, JPEG)"),
        (item_png(ITEM)[:200], "photo: corrupt image: "),
        # over the service's pixel limit (40M) ...
        (png_declaring(8_000, 8_000), "photo: decompression bomb: 8000x8000 pixels > limit"),
        # ... and over Pillow's own
        (png_declaring(40_000, 40_000), "photo: decompression bomb: "),
    ],
)
def test_unusable_photos_are_400_with_the_reason(client, data, message):
    assert _detail(_upload(client, data), 400).startswith(message)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": 0}, "k: Input should be greater than or equal to 1"),
        ({"k": MAX_K + 1}, f"k: Input should be less than or equal to {MAX_K}"),
        ({"category": -1}, "category: Input should be greater than or equal to 0"),
    ],
)
def test_similar_to_a_photo_rejects_bad_parameters(client, params, message):
    assert _detail(_upload(client, item_png(ITEM), **params), 422).startswith(message)


def test_a_request_without_a_photo_is_422(client):
    assert _detail(client.post("/v1/similar"), 422) == "photo: Field required"
    other = client.post("/v1/similar", files={"image": ("x.png", item_png(ITEM), "image/png")})
    assert _detail(other, 422) == "photo: Field required"


def test_similar_to_a_photo_is_503_until_a_bundle_is_loaded(empty):
    expected = "not ready: " + NOT_LOADED.format("lookalike-recommender")
    assert _detail(_upload(empty, item_png(ITEM)), 503) == expected


# ---------------------------------------------------------------- shoppers


def _recommend(c: TestClient, user: str, **params):
    return c.get(f"/v1/users/{user}/recommendations", params=params)


def _calls(app: FastAPI) -> list[dict]:
    return state_of(app, get_shopper_state).current().rec.calls


def test_a_known_shopper_gets_personal_picks_without_what_they_saw(app, client):
    r = _recommend(client, "u001", k=5)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["user_id"] == "u001" and body["k"] == 5
    assert body["mode"] == "personal" and body["known_user"] is True
    assert body["versions"] == SHOPPER_VERSIONS
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 5 and not set(ids) & set(SEEN["u001"])
    assert body["items"][0]["image_url"] == f"/v1/items/{ids[0]}/image"
    assert _calls(app) == [{"user_id": "u001", "k": 5, "exclude_seen": True, "blend": 0.0}]


def test_recommendation_options_are_passed_through(app, client):
    with_seen = _recommend(client, "u001", k=MAX_K, exclude_seen=False).json()
    assert set(SEEN["u001"]) <= {i["item_id"] for i in with_seen["items"]}
    blended = _recommend(client, "u002", blend=0.5).json()
    assert blended["mode"] == "personal+visual"
    assert _calls(app) == [
        {"user_id": "u001", "k": MAX_K, "exclude_seen": False, "blend": 0.0},
        {"user_id": "u002", "k": 10, "exclude_seen": True, "blend": 0.5},
    ]


@pytest.mark.parametrize("user", ["new-shopper-42", "someone@example.com", "a" * 128, "x:1_y.z"])
def test_an_unknown_shopper_gets_the_fallback_not_an_error(client, user):
    r = _recommend(client, user, k=6)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == user and body["known_user"] is False
    assert body["mode"] == "fallback:popular-diverse" and len(body["items"]) == 6


@pytest.mark.parametrize(
    ("user", "params", "message"),
    [
        ("bad user", {}, f"user_id: String should match pattern '{USER_ID_PATTERN}'"),
        ("a" * 129, {}, "user_id: String should match pattern"),
        (".dot-first", {}, "user_id: String should match pattern"),
        ("-dash-first", {}, "user_id: String should match pattern"),
        ("u001", {"k": 0}, "k: Input should be greater than or equal to 1"),
        ("u001", {"k": MAX_K + 1}, f"k: Input should be less than or equal to {MAX_K}"),
        ("u001", {"blend": -0.1}, "blend: Input should be greater than or equal to 0"),
        ("u001", {"blend": 2}, "blend: Input should be less than or equal to 1"),
        ("u001", {"blend": "lots"}, "blend: Input should be a valid number"),
        ("u001", {"exclude_seen": "maybe"}, "exclude_seen: Input should be a valid boolean"),
    ],
)
def test_bad_shopper_requests_are_422_naming_the_field(app, client, user, params, message):
    assert _detail(_recommend(client, user, **params), 422).startswith(message)
    assert _calls(app) == []  # refused before the model is asked


def test_shopper_routes_are_503_until_a_shopper_model_is_loaded(settings, bundle):
    with TestClient(route_app(settings, live=bundle)) as c:  # similarity alone is not enough
        r = _recommend(c, "u001")
    expected = "not ready: " + NOT_LOADED.format("lookalike-shopper-model")
    assert _detail(r, 503) == expected


NOT_DEPLOYED = (
    "no shopper model deployed: no version of 'lookalike-shopper-model' is 'production' in the "
    "registry; to deploy one, land interactions (`lookalike shopper simulate --ingest` or "
    "`lookalike shopper ingest`), then `lookalike shopper train` and `lookalike shopper "
    "promote`, or run the `lookalike_shopper_model` DAG"
)


def test_without_a_deployed_shopper_model_the_user_route_is_404_saying_how_to_deploy_one(
    similarity_only,
):
    """The registry was read and has no shopper model: not an outage to wait out (503)."""
    with TestClient(similarity_only) as c:
        r = _recommend(c, "u001", k=5)
    assert r.headers["content-type"] == "application/json"
    assert _detail(r, 404) == NOT_DEPLOYED


def test_a_similarity_only_service_is_ready_and_its_version_says_no_shopper_model(
    similarity_only,
):
    with TestClient(similarity_only) as c:
        ready, version = c.get("/readyz"), c.get("/v1/version")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["shopper_status"] == "not deployed"
    assert ready.json()["shopper"] is None and ready.json()["shopper_reason"] == NOT_DEPLOYED
    assert version.status_code == 200
    assert version.json() == VERSIONS | {
        "shopper": {"status": "not deployed", "reason": NOT_DEPLOYED, "versions": None}
    }


@pytest.mark.parametrize(("user", "params"), [("bad user", {}), ("u001", {"k": 0})])
def test_a_malformed_request_is_422_even_without_a_shopper_model(similarity_only, user, params):
    with TestClient(similarity_only) as c:
        assert _recommend(c, user, **params).status_code == 422


@pytest.mark.parametrize(
    "reason",
    [
        None,  # the alias names a version, the watcher is still loading it
        "lookalike-shopper-model version 4 failed to load: IndexVersionError: damaged",
    ],
)
def test_a_deployed_shopper_model_not_loaded_is_503_with_the_reason(settings, bundle, reason):
    app = route_app(settings, live=bundle)
    app.state.shopper.deployed, app.state.shopper.last_error = True, reason
    expected = reason or NOT_LOADED.format("lookalike-shopper-model")
    with TestClient(app) as c:
        assert _detail(_recommend(c, "u001"), 503) == f"not ready: {expected}"
        shopper = c.get("/v1/version").json()["shopper"]
    assert shopper == {"status": "not ready", "reason": expected, "versions": None}


def test_the_user_route_declares_404_and_503_in_the_schema(client):
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]["responses"]
    assert responses["404"]["description"].startswith("no shopper model deployed")
    assert responses["503"]["description"].startswith("a deployed shopper model is not loaded")
    status = spec["components"]["schemas"]["ShopperStatus"]["properties"]["status"]
    assert status["enum"] == ["serving", "not deployed", "not ready"]


# ---------------------------------------------------------------- the test app itself


def test_the_route_app_never_touches_the_registry_or_home(app, settings, client, bundle):
    client.get("/readyz")
    client.get(f"/v1/items/{ITEM}/similar")
    # the routes saw the pinned bundle (the fast path reads it as the app's state); no
    # state was loaded from the registry nor watched
    assert state_of(app).current() is bundle and app.state.service is state_of(app)
    assert app.state.shopper.live is None
    for own in (app.state.service, app.state.shopper):
        assert own._thread is None and own._client is None
    assert not settings.home.exists()  # no MLflow store, no bundle cache
