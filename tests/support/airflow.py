"""A local Airflow for this repository's DAGs (`airflow dags test`, Spark ``local[2]``): the
environment the end-to-end DAG tests and bench/pipeline.py share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.server import stop_process_groups

REPO = Path(__file__).resolve().parents[2]


def local_airflow_env(airflow_home: Path, lookalike_home: Path, **extra: str) -> dict[str, str]:
    """Environment for running this repository's DAGs with a local Airflow (`airflow dags
    test`, Spark ``local[2]``). ``extra`` adds or overrides variables."""
    return (
        dict(os.environ)
        | {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
            "LOOKALIKE_HOME": str(lookalike_home),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        | extra
    )


@contextmanager
def airflow_services(env: dict[str, str], port: int, log_dir: Path) -> Iterator[str]:
    """The real Airflow on loopback: api-server, scheduler (LocalExecutor) and dag-processor,
    each in its own session, logs in ``log_dir``. Yields the API's base URL once it and the
    scheduler report healthy; stops all three (SIGTERM, then SIGKILL) on exit."""
    import httpx

    url = f"http://127.0.0.1:{port}"
    env = env | {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    commands = {
        "api-server": [airflow, "api-server", "-H", "127.0.0.1", "-p", str(port)],
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            cmd,
            env=env,
            stdout=(log_dir / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
        for name, cmd in commands.items()
    ]
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                health = httpx.get(f"{url}/api/v2/monitor/health", timeout=5).json()
                if health["scheduler"]["status"] == "healthy":
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            dead = [p.args[1] for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise AssertionError(f"Airflow did not come up (exited: {dead}); logs in {log_dir}")
            time.sleep(0.5)
        yield url
    finally:
        stop_process_groups(procs)


def api_token(url: str, airflow_home: Path) -> str:
    """A bearer token for the REST API, logged in as the simple auth manager's admin (its
    generated password is in AIRFLOW_HOME), as the UI does."""
    import httpx

    passwords = json.loads(
        (airflow_home / "simple_auth_manager_passwords.json.generated").read_text()
    )
    r = httpx.post(
        f"{url}/auth/token",
        json={"username": "admin", "password": passwords["admin"]},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["access_token"]
