"""The service under test as its own process: ``lookalike serve`` started on loopback, waited
for (alive, ready), stopped; a free loopback port; a process's memory from /proc."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen:
    """``lookalike serve`` on 127.0.0.1:``port`` with ``env``; its stderr goes to
    bench/results/serving-server.log."""
    lookalike = str(Path(sys.executable).parent / "lookalike")
    return subprocess.Popen(
        [lookalike, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(REPO / "bench" / "results" / "serving-server.log", "w"),
    )


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


def wait_ready(url: str, timeout: float = 300, poll: float = 0.5) -> dict[str, Any]:
    """Poll /readyz until the service has a bundle loaded; returns its ``versions``."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            if r.status_code == 200:
                return r.json()["versions"]
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"service at {url} not ready after {timeout} s")


def wait_alive(url: str, timeout: float = 300) -> None:
    """The process answers (/healthz), whether or not a bundle is loaded."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"service at {url} not alive after {timeout} s")


def proc_bytes(pid: int, field: str = "VmRSS") -> int:
    """A memory field of /proc/<pid>/status (VmRSS now, VmHWM peak) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")
