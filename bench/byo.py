"""Benchmark: bring your own catalogue. A real RGB photo set becomes a served model.

    .venv/bin/python -m bench.byo [--icons /usr/share/icons/mate/48x48] [--set KEY=VALUE ...]

The photos: the PNG icons of Debian's ``mate-icon-theme`` at one size (``make bench-byo``
installs it); each context folder (actions, apps, devices, mimetypes, places, status, ...)
is a category. Many icons are symlinks or near-copies of others: the duplicates a retail
catalogue has. Everything goes through the product's own commands, as a retailer would run
them, in a fresh LOOKALIKE_HOME:
``lookalike ingest folder`` -> ``lookalike train`` (defaults: input shape from the
catalogue, the small-catalogue schedule) -> ``lookalike promote`` (raw-pixel baseline gate,
distance-aware recall gate, index, bundle) -> ``lookalike serve`` -> a photo upload.
Writes bench/results/byo.json: the encoder's and raw pixels' precision@1 and mAP@R (test
split against train split, exact cosine), whether it was promoted, and wall seconds per step.
The split is hashed from each photo's pixels, so the ~750 duplicate icons never sit on both
sides: the test queries are photos the encoder has not seen, not look-ups of a twin.
Target: the promoted encoder beats raw pixels on both metrics; the whole run <= 15 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.process import free_port

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ICONS = Path("/usr/share/icons/mate/48x48")


def lookalike(env: dict[str, str], *args: str, timeout: float = 3600) -> dict[str, Any]:
    """One CLI command; its stdout is the JSON result (logs go to stderr)."""
    proc = subprocess.run(
        [str(BIN / "lookalike"), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"lookalike {' '.join(args)} failed ({proc.returncode})")
    return json.loads(proc.stdout)


def query_service(env: dict[str, str], icons: Path, log: Path) -> dict[str, Any]:
    """Start ``lookalike serve``, wait until ready, upload one icon, stop the service."""
    import httpx

    port = free_port()
    t0 = time.monotonic()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "lookalike"), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.monotonic() - t0 < 300:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            else:
                raise SystemExit(f"the service did not become ready; see {log}")
            ready_seconds = time.monotonic() - t0
            photo = sorted(icons.glob("devices/*.png"))[0]
            t1 = time.monotonic()
            resp = client.post(
                "/v1/similar",
                files={"photo": (photo.name, photo.read_bytes(), "image/png")},
                params={"k": 5},
            )
            upload_ms = (time.monotonic() - t1) * 1000
            resp.raise_for_status()
            body = resp.json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "ready_seconds": round(ready_seconds, 1),
        "upload_ms": round(upload_ms, 1),
        "photo": f"devices/{photo.name}",
        "top": [
            {"item_id": i["item_id"], "category": i.get("category_name"), "score": i["score"]}
            for i in body["items"]
        ],
        "versions": body["versions"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--icons", type=Path, default=ICONS, help="one size of the icon theme")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--home", type=Path, help="default: a fresh temporary directory")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "byo.json")
    args = parser.parse_args()
    if not args.icons.is_dir():
        raise SystemExit(f"{args.icons} missing: apt-get install mate-icon-theme")
    home = args.home or Path(tempfile.mkdtemp(prefix="lookalike-byo-"))
    env = os.environ | {
        "LOOKALIKE_HOME": str(home),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    seconds: dict[str, float] = {}
    t_all = time.monotonic()

    def step(name: str, *cli: str) -> dict[str, Any]:
        print(f"[bench] {name}: lookalike {' '.join(cli)}", flush=True)
        t = time.monotonic()
        out = lookalike(env, *cli)
        seconds[name] = round(time.monotonic() - t, 1)
        print(f"[bench] {name} done in {seconds[name]} s", flush=True)
        return out

    ingest = step("ingest", "ingest", "folder", str(args.icons), "--source", "icons")
    sets = [a for s in args.set for a in ("--set", s)]
    train = step("train", "train", *sets)
    promote = step("promote", "promote")
    promoted = bool(promote["decision"]["promote"] and promote.get("moved"))
    served: dict[str, Any] = {}
    if promoted:
        t = time.monotonic()
        served = query_service(env, args.icons, home / "serve.log")
        seconds["serve_and_upload"] = round(time.monotonic() - t, 1)
    seconds["total"] = round(time.monotonic() - t_all, 1)

    keys = ("precision_at_1", "map_at_r", "recall_at_5", "queries")
    encoder = {k: train["metrics"].get(k) for k in keys}
    pixels = {k: train["baseline"].get(k) for k in keys}
    out = {
        "benchmark": "byo",
        "command": "python -m bench.byo" + "".join(f" --set {s}" for s in args.set),
        "icons": str(args.icons),
        "catalogue": {k: ingest[k] for k in ("rows_read", "inserted", "rejected", "version_after")},
        "train_config": train.get("config"),
        "encoder": encoder,
        "raw_pixels": pixels,
        "promoted": promoted,
        "gate": promote["decision"],
        "index": {k: (promote.get("index") or {}).get(k) for k in ("size", "recall_at_10")}
        | {"recall_at_10_strict": (promote.get("index") or {}).get("recall_at_10_strict")},
        "service": served,
        "seconds": seconds,
        "target": {
            "beats_pixels": encoder["precision_at_1"] > pixels["precision_at_1"]
            and encoder["map_at_r"] > pixels["map_at_r"],
            "promoted": promoted,
            "max_seconds": 900,
            "met": promoted
            and encoder["precision_at_1"] > pixels["precision_at_1"]
            and encoder["map_at_r"] > pixels["map_at_r"]
            and seconds["total"] <= 900,
        },
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
