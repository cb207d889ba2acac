"""Several `lookalike serve` processes following the embeddings change feed on one store, as
the default configuration runs them (default tail interval, the product's own index and
encoder): they reach the same applied version and give the same answers; one started later
catches up from its snapshot; one killed while applying changes loses nothing once
restarted; a change with a NaN vector is skipped and counted while the rest applies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from lookalike import storage
from lookalike.similarity.config import TrainConfig
from tests.support.builders import FASHION_MNIST_DIR, REPO, TINY_TRAIN
from tests.support.photos import land_fashion_mnist_photos
from tests.support.server import free_port, wait_for

pytestmark = pytest.mark.slow  # a trained encoder, a promoted bundle, service processes


@pytest.fixture(scope="module")
def home(spark, tmp_path_factory):
    """Catalogue (150 + 150), one encoder, bundle version 1 in production."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.training import run_training

    settings = Settings(home=tmp_path_factory.mktemp("fresh-home"), spark_shuffle_partitions=4)
    ingest_fashion_mnist(spark, settings=settings, limit=150)
    trained = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=100)
    promote(settings, challenger=trained.model_version, spark=spark)
    return settings


class Service:
    """One `lookalike serve` process on the home, with its port."""

    def __init__(self, settings, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "lookalike"), "serve", "--port", str(self.port)],
            env=os.environ | {"LOOKALIKE_HOME": str(settings.home)} | env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready(self) -> Service:
        def up() -> bool:
            assert self.proc.poll() is None, self.proc.stdout.read().decode()[-3000:]
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=180)
        return self

    def get(self, path: str, **params) -> dict:
        r = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def version(self) -> int:
        return self.get("/v1/version")["embeddings_version"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        s.stop()


def answers(s: Service, items: list[str], png: bytes) -> list:
    """What a shopper sees: neighbours of each item, and of an upload."""
    out = [[h["item_id"] for h in s.get(f"/v1/items/{i}/similar", k=5)["items"]] for i in items]
    up = httpx.post(f"{s.url}/v1/similar", files={"photo": ("p.png", png, "image/png")})
    return [*out, [h["item_id"] for h in up.json()["items"]]]


def ingest_and_embed(spark, settings, landing: Path) -> dict:
    from lookalike.catalog.ingest import ingest_folder
    from lookalike.workflows.catalog import embed_for_serving

    ingest_folder(spark, landing, settings=settings, source="landing", delete_missing=True)
    return embed_for_serving(spark, settings)


def test_services_converge_catch_up_and_survive_a_kill_mid_apply(home, spark, services, tmp_path):
    from lookalike.similarity.feed import latest_version

    a = Service(home).ready()
    services.append(a)
    start = a.version()
    landing = tmp_path / "landing"
    landed = land_fashion_mnist_photos(FASHION_MNIST_DIR, landing, [4000, 4001], mirror=True)
    embedded = ingest_and_embed(spark, home, landing)
    assert embedded["embedded"] == 2
    target = latest_version(home.embeddings_uri)
    assert target > start
    wait_for(lambda: a.version() == target, timeout=60, every=0.2)
    items = sorted(landed)
    png = storage.read_bytes(landed[items[0]])
    seen = answers(a, items, png)
    assert seen[-1][0] == items[0]  # the upload of the new photo finds it first
    assert a.get("/v1/version")["bundle_version"] == "1"  # in place, no new bundle

    b = Service(home).ready()  # started later: catches up from its snapshot
    services.append(b)
    assert b.version() == target and answers(b, items, png) == seen

    # killed while applying the next change, then restarted: nothing lost
    b.stop()
    storage.remove_file(landed[items[1]])
    land_fashion_mnist_photos(FASHION_MNIST_DIR, landing, [4002], mirror=True)
    ingest_and_embed(spark, home, landing)
    target = latest_version(home.embeddings_uri)
    crashing = Service(home, LOOKALIKE_CRASH_AT="feed.applying")
    services.append(crashing)
    assert crashing.proc.wait(timeout=180) == -signal.SIGKILL
    again = Service(home).ready()
    services.append(again)
    wait_for(lambda: a.version() == target, timeout=60, every=0.2)
    assert again.version() == target
    assert httpx.get(f"{again.url}/v1/items/{items[1]}").status_code == 404
    assert answers(again, items[:1], png) == answers(a, items[:1], png)


def test_a_nan_vector_is_skipped_and_counted_and_the_rest_applies(home, services):
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.embeddings import merge_embeddings, read_embeddings, staged_rows
    from lookalike.similarity.feed import latest_version

    s = Service(home).ready()
    services.append(s)
    manifest_encoder = s.get("/v1/version")["encoder_version"]
    encoder = fetch_encoder(home, manifest_encoder)
    ids, vectors, _ = read_embeddings(home.embeddings_uri, encoder.name, encoder.version)
    bad = np.full((1, vectors.shape[1]), np.nan, np.float32)
    moved = vectors[1:2]  # ids[0] now sits where ids[1] is: a replacement
    rows = staged_rows(
        encoder, 0, upserts=([ids[2], ids[0]], ["nan-hash", "moved-hash"], np.vstack([bad, moved]))
    )
    merge_embeddings(home.embeddings_uri, rows, commit_metadata={})
    target = latest_version(home.embeddings_uri)
    wait_for(lambda: s.version() == target, timeout=60, every=0.2)
    near = [h["item_id"] for h in s.get(f"/v1/items/{ids[0]}/similar", k=1)["items"]]
    assert near == [ids[1]]
    metrics = httpx.get(f"{s.url}/metrics").text
    assert 'lookalike_feed_skipped_total{kind="not_finite"} 1.0' in metrics
    assert s.proc.poll() is None  # ScaNN never saw the NaN
