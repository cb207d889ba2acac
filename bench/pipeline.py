"""Benchmark: the DAGs end to end through Airflow, wall time per task.

    .venv/bin/python -m bench.pipeline [--limit 70000] [--epochs 2] [--changed 0.01]

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

``--store s3`` then runs the same again with the shared state on an S3-compatible server
(``moto_server`` as its own process, loopback), and reports the ratios of the two wall times
(targets: bootstrap <= 1.3x, refresh with 1% changes <= 1.5x the local run).
"""

from __future__ import annotations

import argparse
import io
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

from bench import s3
from bench.process import free_port

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_BOOTSTRAP_S = 15 * 60
TARGET_REFRESH_S = 3 * 60
#: --store s3: the object store's wall time over the local one, same process, same run.
TARGET_S3_BOOTSTRAP_RATIO = 1.3
TARGET_S3_REFRESH_RATIO = 1.5


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
            "PATH": f"{BIN}:{os.environ['PATH']}",
        }
        | extra
    )


def _env(home: Path, port: int) -> dict[str, str]:
    return local_airflow_env(
        home / "airflow",
        home,
        LOOKALIKE_SERVE_URL=f"http://127.0.0.1:{port}",
        LOOKALIKE_SERVE_POLL_SECONDS="2",
        SPARK_LOCAL_IP="127.0.0.1",
    )


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


def _start_service(env: dict[str, str], home: Path, port: int) -> subprocess.Popen:
    """``lookalike serve`` on loopback, once it answers ``/readyz``."""
    import httpx

    service = subprocess.Popen(
        [str(BIN / "lookalike"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=(home / "service.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = env["LOOKALIKE_SERVE_URL"]
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or service.poll() is not None:
            sys.exit(f"the service did not become ready; log: {home / 'service.log'}")
        time.sleep(1)


def _refreshes(env: dict[str, str], home: Path, settings: Any, changed: float) -> list[dict]:
    """Two refresh DAG runs: ``changed`` of the catalogue as new products, then half of those
    photos changed and half removed; each checked through the service."""
    import httpx

    from bench.photos import land_fashion_mnist_photos
    from lookalike import storage
    from lookalike.catalog.table import table_version
    from lookalike.images import encode_pixels

    url = env["LOOKALIKE_SERVE_URL"]
    size = httpx.get(f"{url}/v1/items", params={"limit": 1}).json()["total"]
    n = max(2, round(changed * size))
    landed = land_fashion_mnist_photos(
        settings.fashion_mnist_dir, settings.landing_uri, range(n), mirror=True
    )
    run = _dag_test(env, home, "lookalike_catalog_refresh", {})
    first = sorted(landed)[0]
    served = httpx.get(f"{url}/v1/version").json()["bundle_version"]
    run |= {
        "change": f"{n} new products",
        "catalogue_items": size,
        "bundle_version": served,
        "new_product_found": _service_check(url, served, storage.read_bytes(landed[first]), first),
        "catalogue_version": table_version(settings.catalog_uri),
    }
    runs = [run]
    ids = sorted(landed)
    changed_ids, removed = ids[: n // 2], ids[n // 2 :]
    for item_id in changed_ids:  # a new photo of the same product: shifted down 2 pixels
        pixels = np.asarray(Image.open(io.BytesIO(storage.read_bytes(landed[item_id]))))
        storage.write_bytes(landed[item_id], encode_pixels(np.roll(pixels, 2, axis=0)).png)
    for item_id in removed:
        storage.remove_file(landed[item_id])
    run = _dag_test(env, home, "lookalike_catalog_refresh", {})
    served = httpx.get(f"{url}/v1/version").json()["bundle_version"]
    run |= {
        "change": f"{len(changed_ids)} changed photos, {len(removed)} removed products",
        "bundle_version": served,
        "removed_product_gone": httpx.get(f"{url}/v1/items/{removed[0]}").status_code == 404,
        "changed_product_found": _service_check(
            url, served, storage.read_bytes(landed[changed_ids[0]]), changed_ids[0]
        ),
        "catalogue_version": table_version(settings.catalog_uri),
    }
    return [*runs, run]


def run_pipeline(args: argparse.Namespace, store: str | None) -> dict[str, Any]:
    """Bootstrap, service, two refreshes in a fresh home; shared state under ``store``
    (None: the home, as ``make demo``)."""
    from lookalike.config import Settings

    home = Path(tempfile.mkdtemp(prefix="lookalike-bench-pipeline-", dir=args.home))
    port = free_port()
    env = _env(home, port)
    if store:
        env["LOOKALIKE_STORE_URI"] = store
    os.environ.update({"LOOKALIKE_HOME": str(home)})
    service = None
    try:
        subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
        )
        bootstrap = _dag_test(
            env, home, "lookalike_bootstrap", {"limit": args.limit, "epochs": args.epochs}
        )
        service = _start_service(env, home, port)
        refreshes = _refreshes(env, home, Settings(home=home, store_uri=store), args.changed)
    finally:
        if service is not None:
            os.killpg(service.pid, signal.SIGTERM)
            service.wait(timeout=60)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return {
        "store": store or "local",
        "catalogue_items": refreshes[0]["catalogue_items"],
        "bootstrap": bootstrap | {"conf": {"limit": args.limit, "epochs": args.epochs}},
        "refresh": refreshes,
    }


def _targets(local: dict[str, Any]) -> dict[str, Any]:
    return {
        "bootstrap_seconds_max": TARGET_BOOTSTRAP_S,
        "refresh_seconds_max": TARGET_REFRESH_S,
        "bootstrap_met": local["bootstrap"]["wall_seconds"] <= TARGET_BOOTSTRAP_S,
        "refresh_met": all(r["wall_seconds"] <= TARGET_REFRESH_S for r in local["refresh"]),
    }


def _store_ratios(local: dict[str, Any], remote: dict[str, Any]) -> dict[str, Any]:
    """The object store's wall times over the local ones, measured in this one process."""
    boot = remote["bootstrap"]["wall_seconds"] / local["bootstrap"]["wall_seconds"]
    refresh = remote["refresh"][0]["wall_seconds"] / local["refresh"][0]["wall_seconds"]
    return {
        "bootstrap_s3_vs_local": round(boot, 2),
        "refresh_s3_vs_local": round(refresh, 2),
        "bootstrap_max": TARGET_S3_BOOTSTRAP_RATIO,
        "refresh_max": TARGET_S3_REFRESH_RATIO,
        "bootstrap_met": boot <= TARGET_S3_BOOTSTRAP_RATIO,
        "refresh_met": refresh <= TARGET_S3_REFRESH_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="parent of the run's homes (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the homes afterwards")
    parser.add_argument("--limit", type=int, default=70000, help="Fashion-MNIST images per split")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--changed", type=float, default=0.01, help="share of the catalogue")
    parser.add_argument(
        "--store",
        choices=["local", "s3"],
        default="local",
        help="s3: also run on an S3-compatible store (moto_server, its own process) and "
        "report the ratios to the local run",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline.json")
    args = parser.parse_args()
    if args.store == "s3":
        s3.configure_env()  # before any Spark session, so executors see the endpoint too
    local = run_pipeline(args, None)
    report = {
        "command": "python -m bench.pipeline " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "catalogue_items": local["catalogue_items"],
        "bootstrap": local["bootstrap"],
        "refresh": local["refresh"],
        "targets": _targets(local),
        "ratios": {
            "bootstrap_vs_target": round(
                local["bootstrap"]["wall_seconds"] / TARGET_BOOTSTRAP_S, 2
            ),
            "refresh_vs_target": [
                round(r["wall_seconds"] / TARGET_REFRESH_S, 2) for r in local["refresh"]
            ],
        },
    }
    if args.store == "s3":
        with s3.S3Server(Path(tempfile.mkdtemp(prefix="lookalike-bench-s3-"))) as server:
            remote = run_pipeline(args, f"s3://{server.bucket()}/store")
        report["s3"] = remote
        report["ratios"] |= _store_ratios(local, remote)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("targets", "ratios")}, indent=2))


if __name__ == "__main__":
    main()
