"""Hosts that share no disk: Spark standalone workers and the service each run in their own
mount namespace where the driver's state folder is an empty tmpfs, so anything still passed
through a local path fails. The state lives on an S3-compatible server and an MLflow tracking
server with proxied artifacts; the bootstrap (ingest, train, promote) and a refresh (ingest,
index update, publish) run through spark-submit, and the service follows the new version;
between them, photos ingested and embedded with the served encoder are applied by the
service from the embeddings change feed on the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lookalike import storage
from lookalike.similarity.config import TrainConfig
from tests.support.builders import TINY_TRAIN, write_photo
from tests.support.namespaces import can_hide, hidden
from tests.support.server import free_port, wait_for

BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.requires(can_hide(), "needs root to create mount namespaces"),
]


def _land_photos(landing: str, first: int, count: int) -> None:
    for i in range(first, first + count):
        for c, category in enumerate(("Shoes", "Bags", "Hats")):
            local = write_photo(Path(f"/tmp/lookalike-photo-{os.getpid()}.png"), 1000 * c + i)
            storage.write_bytes(storage.join(landing, category, f"p{i}.png"), local.read_bytes())
            local.unlink()


def test_bootstrap_and_refresh_with_workers_and_service_on_other_hosts(
    s3_server, mlflow_server, tmp_path
):
    from lookalike.config import Settings
    from lookalike.similarity.training import run_training
    from tests.support.spark_standalone import spark_submit, standalone_cluster

    bucket = s3_server.bucket()
    driver_home = tmp_path / "driver-home"
    store = f"s3://{bucket}/store"
    env = os.environ | {
        "LOOKALIKE_HOME": str(driver_home),
        "LOOKALIKE_STORE_URI": store,
        "LOOKALIKE_MLFLOW_TRACKING_URI": mlflow_server.url,
        "LOOKALIKE_PROMOTE_REQUIRE_BASELINE": "false",  # storage is under test, not quality
        "LOOKALIKE_SERVE_POLL_SECONDS": "1",
        # the MLflow server is shared by the test session: this test's own model names
        "LOOKALIKE_ENCODER_MODEL_NAME": f"encoder-{bucket}",
        "LOOKALIKE_ENCODER_EXPERIMENT": f"encoder-{bucket}",
        "LOOKALIKE_RECOMMENDER_MODEL_NAME": f"recommender-{bucket}",
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    settings = Settings(
        home=driver_home,
        store_uri=store,
        mlflow_tracking_uri=mlflow_server.url,
        promote_require_baseline=False,
        encoder_model_name=f"encoder-{bucket}",
        encoder_experiment=f"encoder-{bucket}",
        recommender_model_name=f"recommender-{bucket}",
    )
    runs = storage.join(store, "runs", "test")
    _land_photos(settings.landing_uri, 0, 20)

    driver_home.mkdir(parents=True)
    with standalone_cluster(tmp_path / "spark", hide=[driver_home]) as cluster:
        workers = subprocess.run(
            ["pgrep", "-f", f"deploy.worker.Worker {cluster.master_url}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert len(workers) == 2 and all(_hides(pid, driver_home) for pid in workers)
        master = cluster.master_url
        ingest = spark_submit(
            env, master, "ingest_catalog.py", "folder", settings.landing_uri,
            "--source", "landing", "--delete-missing",
            summary=storage.join(runs, "ingest.json"),
        )  # fmt: skip
        assert ingest["inserted"] == 60
        trained = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=20)
        promoted = spark_submit(
            env, master, "promote.py", "--challenger", str(trained.model_version),
            summary=storage.join(runs, "promote.json"),
        )  # fmt: skip
        assert promoted["decision"]["promote"], promoted["decision"]
        first_bundle = promoted["bundle"]["bundle_version"]

        # the service: its own namespace, its own home; the driver's home is empty for it
        port = free_port()
        service_home = tmp_path / "service-home"
        serve = subprocess.Popen(
            hidden(
                [str(BIN / "lookalike"), "serve", "--port", str(port), "--log-level", "warning"],
                [driver_home],
            ),
            env=env | {"LOOKALIKE_HOME": str(service_home)},
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "service.log", "wb"),  # noqa: SIM115
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _hides(str(serve.pid), driver_home), timeout=30)
            ready = wait_for(lambda: _get(f"{url}/readyz"), timeout=180, every=1)
            assert ready["versions"]["bundle_version"] == first_bundle
            similar = _get(f"{url}/v1/items/Shoes-p3/similar?k=5")
            assert len(similar["items"]) == 5
            photo = httpx.get(f"{url}/v1/items/Shoes-p3/image", timeout=10)
            assert photo.status_code == 200 and photo.content[:4] == b"\x89PNG"

            # fresh: photos land on the store, one is discontinued; the ingest embeds them
            # with the served encoder and the service applies the embeddings change feed
            # from the store in place, with no new bundle
            _land_photos(settings.landing_uri, 20, 1)
            storage.remove_file(storage.join(settings.landing_uri, "Hats", "p0.png"))
            fresh = spark_submit(
                env, master, "ingest_catalog.py", "folder", settings.landing_uri,
                "--source", "landing", "--delete-missing", "--embed-served",
                summary=storage.join(runs, "ingest-fresh.json"),
            )  # fmt: skip
            assert (fresh["inserted"], fresh["deleted"]) == (3, 1)
            assert (fresh["embed"]["embedded"], fresh["embed"]["deleted"]) == (3, 1)
            wait_for(lambda: _status(f"{url}/v1/items/Bags-p20/similar?k=3") == 200, timeout=60)
            assert _status(f"{url}/v1/items/Hats-p0/similar") == 404
            photo = httpx.get(f"{url}/v1/items/Bags-p20/image", timeout=10)
            assert photo.status_code == 200 and photo.content[:4] == b"\x89PNG"
            now = _get(f"{url}/v1/version")
            assert now["bundle_version"] == first_bundle
            assert now["embeddings_version"] > ready["versions"]["embeddings_version"]

            # refresh: more photos land; a full snapshot is written and served
            _land_photos(settings.landing_uri, 21, 1)
            again = spark_submit(
                env, master, "ingest_catalog.py", "folder", settings.landing_uri,
                "--source", "landing", "--delete-missing",
                summary=storage.join(runs, "ingest2.json"),
            )  # fmt: skip
            assert (again["inserted"], again["deleted"]) == (3, 0)
            update = spark_submit(
                env, master, "reindex.py", summary=storage.join(runs, "reindex.json")
            )
            assert update["kind"] == "update" and update["bundle"]["bundle_version"] != first_bundle

            new = update["bundle"]["bundle_version"]
            wait_for(
                lambda: _get(f"{url}/readyz").get("versions", {}).get("bundle_version") == new,
                timeout=120,
            )
            assert httpx.get(f"{url}/v1/items/Bags-p21/similar?k=3", timeout=10).status_code == 200
            assert httpx.get(f"{url}/v1/items/Hats-p0/similar", timeout=10).status_code == 404
        finally:
            serve.terminate()
            serve.wait(timeout=30)
        assert not (driver_home / "lake").exists() and not (service_home / "lake").exists()
        apps = {a["name"] for a in cluster.status()["completedapps"]}
        assert {"lookalike-ingest-folder", "lookalike-promote"} <= apps


def _hides(pid: str, folder: Path) -> bool:
    """True when process ``pid`` sees ``folder`` as its own tmpfs mount (another host)."""
    try:
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    except OSError:
        return False
    return any(f" {folder} " in line and " tmpfs " in line for line in mounts)


def _status(url: str) -> int:
    return httpx.get(url, timeout=10).status_code


def _get(url: str) -> dict:
    try:
        r = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return {}
    return r.json() if r.status_code == 200 else {}


def test_the_hiding_really_hides(tmp_path):
    """The harness's own check: a hidden folder's files are invisible to the process."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "file").write_text("driver only")
    seen = subprocess.run(hidden(["ls", "-A", str(secret)], [secret]), capture_output=True)
    assert seen.returncode == 0 and seen.stdout == b""
