"""A real MLflow tracking server for the tests: database backend, proxied artifacts.

``mlflow server --serve-artifacts`` stores artifacts where ``--artifacts-destination`` says
(the test S3 bucket) and clients reach them only through the server (``mlflow-artifacts:``),
so no client needs the artifact store on its disk.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.server import free_port


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite backend in ``workdir``; stops at exit."""

    def __init__(self, workdir: Path, artifacts_destination: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.destination = artifacts_destination
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MlflowServer:
        exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        cmd = [
            exe,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.workdir / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            self.destination,
        ]
        log = open(self.workdir / "mlflow-server.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=self.workdir)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = (self.workdir / "mlflow-server.log").read_text()[-3000:]
                raise RuntimeError(f"mlflow server exited: {text}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("mlflow server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
