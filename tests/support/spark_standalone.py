"""A Spark standalone cluster (one master, N workers) on loopback, from the pyspark distribution.

Shows the jobs are cluster-ready, not only ``local[2]``: a test starts one,
point ``spark-submit --master spark://127.0.0.1:PORT`` at it, and stop it. The pyspark wheel
has no ``sbin/start-master.sh``, so the daemons run through ``bin/spark-class``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import stop_process_groups


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports: all sockets stay open until every port is picked,
    so no two daemons are handed the same one (a worker's UI on the master's UI port once
    made the master's ``/json/`` answer HTML)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class Cluster:
    master_url: str
    ui_url: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as r:
            return json.loads(r.read())

    def alive_workers(self) -> int:
        return sum(1 for w in self.status().get("workers", []) if w.get("state") == "ALIVE")


def _daemon(
    args: list[str], log: Path, env: dict[str, str], hide: list[Path] | None = None
) -> subprocess.Popen:
    cmd = [str(spark_home() / "bin" / "spark-class"), *args]
    if hide:  # as if on another host: these folders are empty tmpfs mounts for it
        from tests.support.namespaces import hidden

        cmd = hidden(cmd, hide)
    with log.open("ab") as out:
        # own process group: stopping it stops the JVM that spark-class execs
        return subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)


@contextmanager
def standalone_cluster(
    workdir: Path,
    *,
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    timeout: float = 120,
    hide: list[Path] | None = None,
) -> Iterator[Cluster]:
    """Master + ``workers`` workers bound to 127.0.0.1; stopped on exit, whatever happens.
    ``hide``: each worker (and its executors) runs in its own mount namespace where these
    folders are empty (``tests.support.namespaces``): a worker on another host."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(workdir / "logs"),
        "PYSPARK_PYTHON": sys.executable,
    }
    port, ui, *worker_uis = _free_ports(2 + workers)
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}")
    try:
        cluster.processes.append(
            _daemon(
                [
                    "org.apache.spark.deploy.master.Master",
                    *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)),
                ],
                workdir / "master.log",
                env,
            )
        )
        for n in range(workers):
            work = workdir / f"worker-{n}"
            work.mkdir(exist_ok=True)
            cluster.processes.append(
                _daemon(
                    [
                        "org.apache.spark.deploy.worker.Worker",
                        cluster.master_url,
                        *("--host", "127.0.0.1", "--cores", str(cores), "--memory", memory),
                        *("--webui-port", str(worker_uis[n]), "--work-dir", str(work)),
                    ],
                    workdir / f"worker-{n}.log",
                    env,
                    hide,
                )
            )
        _wait_for_workers(cluster, workers, timeout, workdir)
        yield cluster
    finally:
        stop_process_groups(cluster.processes)


def _wait_for_workers(cluster: Cluster, workers: int, timeout: float, workdir: Path) -> None:
    """Until the master reports ``workers`` alive workers; a daemon that exits, or no cluster
    after ``timeout`` seconds, is an error naming the log folder."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cluster.alive_workers() == workers:
                return
        except (OSError, ValueError):  # not listening yet, or a page that is not JSON yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"standalone cluster not up after {timeout:.0f} s (logs in {workdir})"
            )
        if any(p.poll() is not None for p in cluster.processes):
            raise RuntimeError(f"a Spark daemon exited at start-up (logs in {workdir})")
        time.sleep(0.5)


def spark_submit(env: dict[str, str], master: str, job: str, *args: str, summary: str) -> dict:
    """``spark-submit spark_jobs/<job> ARGS --summary-file SUMMARY`` on ``master``; returns the
    job's JSON summary (a local path or a store URI); a failed job fails the test with its
    output."""
    from lookalike import storage

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "spark-submit"),
            *("--master", master, "--driver-memory", "1g", "--executor-memory", "1g"),
            str(repo / "spark_jobs" / job),
            *args,
            *("--summary-file", summary),
        ],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(storage.read_bytes(summary))
