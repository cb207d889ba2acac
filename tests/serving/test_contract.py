"""The OpenAPI contract, checked by schemathesis with **all** its checks over every route:
status codes, bodies, content types and headers are the ones the schema declares, invalid
input is refused, valid input accepted. In process (ASGI) over the route-test app, so it runs
in seconds, twice: with both models loaded, and as a similarity-only service (the registry has
no shopper model: the user route answers 404, never a 5xx). tests/integration/test_service.py
runs the same checks against real servers.

(schemathesis' pytest plugin does not run under pytest 9, so each operation's Hypothesis
strategy is driven here directly.)"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.service import (
    TOKEN,
    route_app,
    service_settings,
    shopper_live,
    similar_live,
)

OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/version"),
    ("POST", "/v1/admin/reload"),
    ("GET", "/v1/items"),
    ("GET", "/v1/items/{item_id}"),
    ("GET", "/v1/items/{item_id}/image"),
    ("GET", "/v1/categories"),
    ("GET", "/v1/items/{item_id}/similar"),
    ("POST", "/v1/similar"),
    ("GET", "/v1/users/{user_id}/recommendations"),
]


@pytest.fixture(scope="module", params=["both-models", "similarity-only"])
def api(request, tmp_path_factory) -> Any:
    if request.param == "similarity-only":
        app = request.getfixturevalue("similarity_only")  # tests/serving/conftest.py
    else:
        home = tmp_path_factory.mktemp("contract") / "home"
        app = route_app(service_settings(home), live=similar_live(), shopper=shopper_live())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _check(api: Any, method: str, path: str, headers: dict[str, str] | None = None) -> None:
    operation = api[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers)

    run()


def test_the_schema_lists_exactly_these_operations(api):
    found = {(op.ok().method.upper(), op.ok().path) for op in api.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_route_keeps_the_contract(api, method, path):
    """Generated requests, the admin route's token as generated (missing or wrong)."""
    _check(api, method, path)


def test_the_admin_route_keeps_the_contract_with_the_right_token(api):
    _check(api, "POST", "/v1/admin/reload", {"Authorization": f"Bearer {TOKEN}"})
