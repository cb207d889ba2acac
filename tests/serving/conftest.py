"""A similarity-only service for the route and contract tests: the in-memory similarity bundle
(tests/support/service.py), and a shopper state that read a REAL registry (MLflow on SQLite
under a temporary home) and found no shopper model deployed there, as a retailer who brings
only product photos has."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from serving.state import NOT_DEPLOYED
from tests.support.service import route_app, service_settings, similar_live


@pytest.fixture(scope="session")
def similarity_only(tmp_path_factory) -> FastAPI:
    """The route-test app with a similarity bundle and no shopper model in the registry."""
    settings = service_settings(tmp_path_factory.mktemp("similarity-only") / "home")
    settings.mlflow_dir.mkdir(parents=True)  # the registry's SQLite file goes there
    app = route_app(settings, live=similar_live())
    outcome = app.state.shopper.reload()  # the watcher's poll, once
    assert outcome.action == "no-version" and app.state.shopper.status() == NOT_DEPLOYED
    return app
