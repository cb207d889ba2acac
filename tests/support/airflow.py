"""A local Airflow for this repository's DAGs, Spark ``local[2]``: the environment a user gets
from ``scripts/env.sh`` (the end-to-end DAG tests), the real scheduler, dag-processor and API
server on loopback, and a REST client that triggers and waits for runs as the UI does."""

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


#: bash's own variables, not the user's environment
_SHELL_VARS = {"PWD", "OLDPWD", "SHLVL", "_"}


def user_env(airflow_home: Path, lookalike_home: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment ``scripts/env.sh`` gives a user, sourced in a clean shell from the
    repository (as `make demo` does), for these homes and Airflow port: the variables of the
    test process (its MLflow, Spark and Airflow settings) are NOT passed on. PATH starts with
    the virtual environment's bin, as in `make` or an activated venv. ``extra`` adds or
    overrides variables (a test's smaller budgets)."""
    clean = {
        "HOME": os.environ.get("HOME", "/root"),
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LOOKALIKE_HOME": str(lookalike_home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW_PORT": str(port),
    }
    shell = subprocess.run(
        ["bash", "-c", "source scripts/env.sh && env -0"],
        env=clean,
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    pairs = (item.split("=", 1) for item in shell.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k not in _SHELL_VARS} | extra


@contextmanager
def airflow_services(
    env: dict[str, str], port: int, log_dir: Path, *, cwd: Path = REPO
) -> Iterator[str]:
    """The real Airflow on loopback: api-server, scheduler (LocalExecutor, a process per task),
    dag-processor and triggerer, each in its own session started in ``cwd``, logs in
    ``log_dir``. Yields the API's base URL once it and the scheduler report healthy; stops
    all four (SIGTERM, then SIGKILL) on exit."""
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
        # runs the asset watchers' triggers (the fresh ingest's landing listing)
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            cmd,
            env=env,
            stdout=(log_dir / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
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


class AirflowApi:
    """The REST calls the UI makes: unpause, trigger with a form, watch a run. A call the API
    server answers with a 5xx (SQLite's "database is locked" while tasks write, on a
    one-machine deployment) is retried a few times, as a user would click again."""

    def __init__(self, url: str, airflow_home: Path) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_token(url, airflow_home)}"}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=30)

    def _call(self, method: str, path: str, **kwargs):
        for _ in range(5):
            r = self.client.request(method, path, **kwargs)
            if r.status_code < 500:
                return r
            time.sleep(2)
        return r

    def dag(self, dag_id: str) -> dict:
        r = self._call("GET", f"/api/v2/dags/{dag_id}")
        r.raise_for_status()
        return r.json()

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        """Until the dag-processor has parsed and serialised every one of ``dag_ids``."""
        from tests.support.server import wait_for

        def parsed() -> bool:
            return all(self._call("GET", f"/api/v2/dags/{d}").status_code == 200 for d in dag_ids)

        wait_for(parsed, timeout=timeout, every=1)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        r = self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})
        r.raise_for_status()

    def runs(self, dag_id: str) -> list[dict]:
        r = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
        r.raise_for_status()
        return r.json()["dag_runs"]

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """A manual run (the UI's trigger button with its form); returns its run id."""
        body = {"logical_date": None, "conf": conf or {}}
        r = self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        assert r.status_code == 200, r.text
        return r.json()["dag_run_id"]

    def state(self, dag_id: str, run_id: str) -> str:
        r = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        r.raise_for_status()
        return r.json()["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        r = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        r.raise_for_status()
        return {t["task_id"]: t["state"] for t in r.json()["task_instances"]}

    def wait(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state (success or failed), polling every 2 s up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise AssertionError(
            f"{dag_id} {run_id} still {state} after {timeout:.0f} s: "
            f"{self.task_states(dag_id, run_id)}"
        )

    def run(self, dag_id: str, conf: dict | None = None, timeout: float = 1800) -> str:
        """Unpause, trigger, wait for success (asserted, with every task's state), pause
        again; returns the run id."""
        self.set_paused(dag_id, False)
        try:
            run_id = self.trigger(dag_id, conf)
            state = self.wait(dag_id, run_id, timeout)
            assert state == "success", (dag_id, run_id, self.task_states(dag_id, run_id))
        finally:
            self.set_paused(dag_id, True)
        return run_id
