"""Shared fixtures: one Spark session per test session, a fresh LOOKALIKE_HOME per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import s3
from tests.support.builders import write_photo
from tests.support.mlflow_server import MlflowServer

#: What MLflow finds when code uses it without the deployment's settings: a store that does not
#: exist, so such a use fails loudly here instead of quietly creating ``mlflow.db`` or
#: ``mlruns`` in the working directory (where production has no model).
UNCONFIGURED_MLFLOW = "unconfigured-mlflow://set-from-lookalike-settings"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # A pytest-xdist worker (`make test` runs two) inherits the controller's environment:
        # it gets its own S3 test server (port), home and Spark session, never the other's.
        os.environ.pop(s3.ENV_PORT, None)
    # Nothing a test runs may write into the developer's real home.
    os.environ["LOOKALIKE_HOME"] = tempfile.mkdtemp(prefix="lookalike-test-home-")
    os.environ["MLFLOW_TRACKING_URI"] = UNCONFIGURED_MLFLOW
    os.environ["MLFLOW_REGISTRY_URI"] = UNCONFIGURED_MLFLOW
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Before any Spark session: its workers inherit the S3 test server's endpoint from here.
    s3.configure_env()
    from lookalike.config import get_settings

    get_settings.cache_clear()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires(ok, reason)``: a test that cannot run here is skipped on a
    developer's machine, but FAILS under CI (``CI`` set, as ``.ci/run`` does): CI installs
    everything such a test needs, so a missing prerequisite there is a broken set-up, never
    a silent skip."""
    for mark in item.iter_markers("requires"):
        ok, reason = mark.args
        if ok:
            continue
        if os.environ.get("CI"):
            pytest.fail(f"cannot run under CI: {reason}", pytrace=False)
        pytest.skip(reason)


def pytest_unconfigure(config: pytest.Config) -> None:
    # The session-wide home made above; tests' own homes are pytest tmp_paths.
    home = os.environ.get("LOOKALIKE_HOME", "")
    if Path(home).name.startswith("lookalike-test-home-"):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[s3.S3Server]:
    """An S3-compatible server on loopback (``moto_server``, its own process)."""
    with s3.S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_server(s3_server, tmp_path_factory) -> Iterator[MlflowServer]:
    """An MLflow tracking server on loopback: SQLite backend, artifacts proxied to the test
    S3 server (bucket ``mlflow-artifacts-...``)."""
    bucket = s3_server.bucket("mlflow-artifacts")
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server"), f"s3://{bucket}/mlflow") as srv:
        srv.bucket = bucket
        yield srv


@pytest.fixture(scope="session")
def spark():
    from lookalike.config import Settings
    from lookalike.spark import spark_session

    session = spark_session(
        "lookalike-tests", Settings(spark_driver_memory="1g", spark_shuffle_partitions=4)
    )
    yield session
    session.stop()


@pytest.fixture
def settings(tmp_path: Path):
    from lookalike.config import Settings

    return Settings(home=tmp_path / "home", spark_shuffle_partitions=4)


@pytest.fixture(scope="session")
def small_catalog(spark, tmp_path_factory):
    """Settings whose home holds a Fashion-MNIST slice (600 train + 600 test), shared by the
    model tests (they only read the catalogue; MLflow runs accumulate in the same store)."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings

    settings = Settings(home=tmp_path_factory.mktemp("model-home"), spark_shuffle_partitions=4)
    ingest_fashion_mnist(spark, settings=settings, limit=600)
    return settings


@pytest.fixture
def photo_folder(tmp_path: Path) -> Iterator[Path]:
    """36 good photos in 3 category folders, plus a corrupt, an empty and a non-image file."""
    root = tmp_path / "photos"
    for c, cat in enumerate(("Shoes", "Hand bags", "Hats")):
        for i in range(12):
            suffix = ".jpg" if i % 2 else ".png"
            write_photo(root / cat / f"item {i}{suffix}", seed=100 * c + i)
    good = (root / "Shoes" / "item 0.png").read_bytes()
    (root / "Shoes" / "corrupt.png").write_bytes(good[: len(good) // 2])
    (root / "Hats" / "empty.jpg").write_bytes(b"")
    (root / "Hats" / "readme.txt").write_text("not a photo")
    yield root
