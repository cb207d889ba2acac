"""`lookalike serve` as its own process, following an MLflow tracking SERVER: it keeps serving
while the server is down and picks up a new version once it is back; SIGTERM lets the
requests in flight finish before it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lookalike.similarity.config import TrainConfig
from tests.support.builders import REPO, TINY_TRAIN
from tests.support.mlflow_server import MlflowServer
from tests.support.server import free_port, wait_for

pytestmark = pytest.mark.slow  # a tracking server, a trained encoder, a service process


@pytest.fixture(scope="module")
def tracking(s3_server, tmp_path_factory) -> Iterator[MlflowServer]:
    """A tracking server of this module's own, so it can be stopped and started again (same
    port, same database)."""
    bucket = s3_server.bucket("mlflow-restart")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-restart"), f"s3://{bucket}/mlflow")
    with server:
        yield server


@pytest.fixture(scope="module")
def home(spark, tracking, tmp_path_factory):
    """Catalogue (150 + 150), one encoder, bundle version 1 in production, on the server."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.training import run_training

    settings = Settings(
        home=tmp_path_factory.mktemp("serve-process-home"),
        spark_shuffle_partitions=4,
        mlflow_tracking_uri=tracking.url,
    )
    ingest_fashion_mnist(spark, settings=settings, limit=150)
    trained = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=100)
    promote(settings, challenger=trained.model_version, spark=spark)
    return settings


def _serve(settings, port: int) -> subprocess.Popen:
    env = os.environ | {
        "LOOKALIKE_HOME": str(settings.home),
        "LOOKALIKE_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "LOOKALIKE_SERVE_POLL_SECONDS": "0.5",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "lookalike"), "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=180)
    return proc


@pytest.fixture(scope="module")
def service(home) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    proc = _serve(home, port)
    yield proc, f"http://127.0.0.1:{port}"
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _similar(url: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/items/fm-test-00001/similar", params={"k": 3}, timeout=30)


def test_the_service_keeps_serving_while_mlflow_is_down_and_follows_it_back(
    home, tracking, service, spark, tmp_path
):
    from lookalike.catalog.ingest import ingest_folder
    from lookalike.similarity.index import update_index
    from lookalike.similarity.registry import publish_bundle
    from tests.support.builders import FASHION_MNIST_DIR
    from tests.support.photos import land_fashion_mnist_photos

    _, url = service
    assert _similar(url).json()["versions"]["bundle_version"] == "1"
    tracking.__exit__(None, None, None)  # the registry goes away
    try:
        t_end = time.monotonic() + 4  # (the watcher's MLflow client is retrying meanwhile)
        while time.monotonic() < t_end:
            r = _similar(url)
            assert r.status_code == 200 and r.json()["versions"]["bundle_version"] == "1"
            time.sleep(0.1)
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    finally:
        tracking.__enter__()  # back, on the same port and database
    landing = tmp_path / "landing"
    land_fashion_mnist_photos(FASHION_MNIST_DIR, str(landing), range(3), mirror=True)
    ingest_folder(spark, landing, settings=home)
    published = publish_bundle(home, Path(update_index(home).path))
    assert published.bundle_version == "2"
    wait_for(lambda: _similar(url).json()["versions"]["bundle_version"] == "2", timeout=120)


def test_sigterm_lets_in_flight_requests_finish(home, service):
    import io

    import numpy as np
    from PIL import Image

    proc, url = service
    # large photos (1,200 px of noise, ~1.4 MB): decoding and resizing each takes the server
    # ~10+ ms, so 48 of them outlast the 50 ms below even on a fast CPU (catalogue-sized
    # 28 px photos were all answered within 85 ms on one)
    rng = np.random.default_rng(0)
    uploads = []
    for _ in range(48):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (1200, 1200), dtype=np.uint8)).save(buf, "PNG")
        uploads.append(buf.getvalue())
    finished: list[float] = []
    # one kept-alive connection per request, opened before, so no connect races the signal
    clients = [httpx.Client(base_url=url, timeout=60) for _ in uploads]
    for c in clients:
        assert c.get("/readyz").status_code == 200

    def upload(job: tuple[httpx.Client, bytes]) -> int:
        client, png = job
        r = client.post("/v1/similar", files={"photo": ("p.png", png, "image/png")})
        finished.append(time.monotonic())
        return r.status_code

    with ThreadPoolExecutor(len(uploads)) as pool:
        futures = [pool.submit(upload, job) for job in zip(clients, uploads, strict=True)]
        # the signal comes once the service has begun every upload (in flight or answered):
        # a request still in the socket, unread, is one uvicorn cannot tell from an idle
        # keep-alive connection, and it closes those at shutdown by design
        wait_for(lambda: _begun_uploads(url) >= len(uploads), timeout=60, every=0.005)
        signalled = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        codes = [f.result() for f in futures]
    for c in clients:
        c.close()
    assert codes == [200] * len(uploads)
    assert max(finished) > signalled, "nothing was in flight at SIGTERM: the test proves nothing"
    # uvicorn finishes its graceful shutdown, then re-raises the signal (exit status -15)
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)


def _begun_uploads(url: str) -> float:
    """Uploads the service has answered or is answering (its own metrics, less this scrape)."""
    from prometheus_client.parser import text_string_to_metric_families

    begun = -1.0  # the scrape itself is in flight
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            answered = s.name == "lookalike_requests_total" and s.labels["method"] == "POST"
            if answered or s.name == "lookalike_requests_in_flight":
                begun += s.value
    return begun
