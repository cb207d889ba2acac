"""Benchmark: the DAGs end to end through Airflow, wall time per task.

    .venv/bin/python bench/pipeline.py [--limit 70000] [--epochs 2] [--changed 0.01]

In a fresh home (a temporary directory unless ``--home``) with its own Airflow metadata
database: `airflow dags test lookalike_bootstrap` on the full Fashion-MNIST catalogue; then the
recommendation service starts on loopback and `lookalike_catalog_refresh` runs twice with
``--changed`` of the catalogue changed in the landing folder: first new products (photos
landed), then half of those photos changed and half removed. The refresh DAG's last task waits
until the service answers with the new bundle version, so its wall time is "trigger -> the
service answers with the new version"; the bench checks that independently with a photo query.
Per-task seconds come from Airflow's own task instance records. Writes
bench/results/pipeline.json. Targets on 2 cores: bootstrap <= 15 minutes end to end; refresh
with 1% changes <= 3 minutes from trigger to the service answering with the new version.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
TARGET_BOOTSTRAP_S = 15 * 60
TARGET_REFRESH_S = 3 * 60


def _env(home: Path, port: int) -> dict[str, str]:
    from tests.support.airflow import local_airflow_env

    return local_airflow_env(
        home / "airflow",
        home,
        LOOKALIKE_SERVE_URL=f"http://127.0.0.1:{port}",
        LOOKALIKE_SERVE_POLL_SECONDS="2",
        SPARK_LOCAL_IP="127.0.0.1",
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _task_seconds(home: Path, dag_id: str) -> dict[str, Any]:
    """Seconds per task of the DAG's latest run, from Airflow's metadata database."""
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, state, duration FROM task_instance"
            " WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
            (dag_id, run_id),
        ).fetchall()
    return {task: {"state": state, "seconds": round(d or 0.0, 1)} for task, state, d in rows}


def _dag_test(env: dict[str, str], home: Path, dag_id: str, conf: dict[str, Any]) -> dict:
    print(f"[bench] airflow dags test {dag_id} {json.dumps(conf)}", flush=True)
    log = home / f"{dag_id}-{int(time.time())}.log"
    t = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", dag_id, "-c", json.dumps(conf)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        ).returncode
    wall = round(time.monotonic() - t, 1)
    tasks = _task_seconds(home, dag_id)
    failed = [k for k, v in tasks.items() if v["state"] not in ("success", "skipped")]
    if rc != 0 or failed:
        sys.exit(f"{dag_id} failed (rc {rc}, tasks {failed}); log: {log}")
    print(f"[bench]   {wall} s: {json.dumps(tasks)}", flush=True)
    return {"wall_seconds": wall, "tasks": tasks}


def _service_check(url: str, expected_version: str, photo: bytes, item_id: str | None) -> bool:
    """The service answers with ``expected_version``; a photo query finds ``item_id`` first
    (or, with ``item_id`` None, the answer just carries the version)."""
    import httpx

    r = httpx.post(f"{url}/v1/similar", files={"photo": ("p.png", photo, "image/png")}).json()
    ok = r["versions"]["bundle_version"] == expected_version
    return ok and (item_id is None or r["items"][0]["item_id"] == item_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="default: a temporary directory, removed")
    parser.add_argument("--limit", type=int, default=70000, help="Fashion-MNIST images per split")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--changed", type=float, default=0.01, help="share of the catalogue")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline.json")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="lookalike-bench-pipeline-"))
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = _env(home, port)
    os.environ.update({"LOOKALIKE_HOME": str(home)})
    url = env["LOOKALIKE_SERVE_URL"]
    service = None
    try:
        subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
        )
        bootstrap = _dag_test(
            env, home, "lookalike_bootstrap", {"limit": args.limit, "epochs": args.epochs}
        )

        import httpx

        from lookalike.catalog.table import table_version
        from lookalike.config import Settings
        from lookalike.images import encode_pixels
        from tests.support.photos import land_fashion_mnist_photos

        settings = Settings(home=home)
        service = subprocess.Popen(
            [str(BIN / "lookalike"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=(home / "service.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or service.poll() is not None:
                sys.exit(f"the service did not become ready; log: {home / 'service.log'}")
            time.sleep(1)
        size = httpx.get(f"{url}/v1/items", params={"limit": 1}).json()["total"]
        n = max(2, round(args.changed * size))

        refreshes = []
        landed = land_fashion_mnist_photos(
            settings.fashion_mnist_dir, settings.landing_uri, range(n), mirror=True
        )
        run = _dag_test(env, home, "lookalike_catalog_refresh", {})
        first = sorted(landed)[0]
        served = httpx.get(f"{url}/v1/version").json()["bundle_version"]
        run |= {
            "change": f"{n} new products",
            "bundle_version": served,
            "new_product_found": _service_check(url, served, landed[first].read_bytes(), first),
            "catalogue_version": table_version(settings.catalog_uri),
        }
        refreshes.append(run)

        ids = sorted(landed)
        changed, removed = ids[: n // 2], ids[n // 2 :]
        for item_id in changed:  # a new photo of the same product: shifted down 2 pixels
            photo = landed[item_id]
            photo.write_bytes(encode_pixels(np.roll(np.asarray(Image.open(photo)), 2, axis=0)).png)
        for item_id in removed:
            landed[item_id].unlink()
        run = _dag_test(env, home, "lookalike_catalog_refresh", {})
        served = httpx.get(f"{url}/v1/version").json()["bundle_version"]
        gone = httpx.get(f"{url}/v1/items/{removed[0]}").status_code == 404
        run |= {
            "change": f"{len(changed)} changed photos, {len(removed)} removed products",
            "bundle_version": served,
            "removed_product_gone": gone,
            "changed_product_found": _service_check(
                url, served, landed[changed[0]].read_bytes(), changed[0]
            ),
            "catalogue_version": table_version(settings.catalog_uri),
        }
        refreshes.append(run)
    finally:
        if service is not None:
            os.killpg(service.pid, signal.SIGTERM)
            service.wait(timeout=60)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)

    report = {
        "command": "python bench/pipeline.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "catalogue_items": size,
        "bootstrap": bootstrap | {"conf": {"limit": args.limit, "epochs": args.epochs}},
        "refresh": refreshes,
        "targets": {
            "bootstrap_seconds_max": TARGET_BOOTSTRAP_S,
            "refresh_seconds_max": TARGET_REFRESH_S,
            "bootstrap_met": bootstrap["wall_seconds"] <= TARGET_BOOTSTRAP_S,
            "refresh_met": all(r["wall_seconds"] <= TARGET_REFRESH_S for r in refreshes),
        },
        "ratios": {
            "bootstrap_vs_target": round(bootstrap["wall_seconds"] / TARGET_BOOTSTRAP_S, 2),
            "refresh_vs_target": [
                round(r["wall_seconds"] / TARGET_REFRESH_S, 2) for r in refreshes
            ],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("targets", "ratios")}, indent=2))


if __name__ == "__main__":
    main()
