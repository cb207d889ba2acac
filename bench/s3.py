"""A real S3-compatible server for the object-store tests and ``python -m bench.pipeline
--store s3``: ``moto_server`` as its own process.

moto's in-process ``ThreadedMotoServer`` deadlocks on delta-rs change-feed reads; a separate
process does not. The endpoint and credentials are fixed before the shared Spark session
starts (``configure_env``), because executors' Python workers inherit the environment the
JVM was started with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench.process import free_port

ENV_PORT = "LOOKALIKE_TEST_S3_PORT"


def configure_env() -> None:
    """Point every AWS client of this test session (and its Spark workers) at the test
    server's loopback port, with throwaway credentials."""
    port = os.environ.get(ENV_PORT) or str(free_port())
    os.environ[ENV_PORT] = port
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="lookalike-test",
        AWS_SECRET_ACCESS_KEY="lookalike-test-secret",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(var, None)


class S3Server:
    """``moto_server`` on 127.0.0.1 (the port ``configure_env`` chose); stops at exit."""

    def __init__(self, log_dir: Path) -> None:
        self.port = int(os.environ[ENV_PORT])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "moto_server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> S3Server:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log_path.read_text()[-2000:]}")
            try:
                httpx.get(self.endpoint, timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("moto_server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def bucket(self, prefix: str = "lookalike") -> str:
        """A new empty bucket; returns its name."""
        import boto3

        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        import boto3

        pages = boto3.client("s3", endpoint_url=self.endpoint).get_paginator("list_objects_v2")
        return [
            o["Key"]
            for p in pages.paginate(Bucket=bucket, Prefix=prefix)
            for o in p.get("Contents", [])
        ]
