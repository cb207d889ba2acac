"""docker-compose.yaml stays valid and consistent with the local set-up (no engine runs here)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from lookalike.config import Settings
from tests.support.builders import REPO

COMPOSE = REPO / "docker-compose.yaml"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def _profiles() -> list[str]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return sorted({p for s in services.values() for p in s.get("profiles", [])})


@pytest.mark.parametrize("profile", [None, *_profiles()], ids=lambda p: p or "default")
def test_compose_file_validates(profile):
    """``config`` for the default services and each profile. scripts/setup.sh installs a
    compose client, so under CI a missing one is a failure, not a skip."""
    cli = _compose_cli()
    if cli is None:
        if os.environ.get("CI"):
            pytest.fail("no docker compose client: scripts/setup.sh should have installed one")
        pytest.skip("no docker compose client on this machine (make setup installs one)")
    select = ["--profile", profile] if profile else []
    done = subprocess.run(
        [*cli, "-f", str(COMPOSE), *select, "config", "-q"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_compose_services_and_settings_match_the_local_set_up():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {
        "postgres",
        "mlflow",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "recommender",
    } <= set(services)
    known = {f"LOOKALIKE_{name.upper()}" for name in Settings.model_fields}
    for name, svc in services.items():
        for var in svc.get("environment") or {}:
            if var.startswith("LOOKALIKE_"):
                assert var in known, f"{name}: {var} is not a setting in lookalike/config.py"
        if name not in ("airflow-init", "object-store-init"):
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        if name not in ("object-store", "postgres"):  # the stores keep their own data
            assert not svc.get("volumes"), f"{name} mounts {svc['volumes']}: no shared disk"
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert (REPO / "Dockerfile").is_file()


def test_compose_keeps_the_shared_state_on_the_object_store():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    env = services["recommender"]["environment"]
    settings = Settings(store_uri=env["LOOKALIKE_STORE_URI"], home="/data/lookalike")
    assert settings.catalog_uri.startswith("s3://") and settings.index_uri.startswith("s3://")
    assert env["AWS_ENDPOINT_URL"].startswith("http://object-store:")
    assert "--serve-artifacts" in services["mlflow"]["command"]
    assert "s3://" in services["mlflow"]["command"]
