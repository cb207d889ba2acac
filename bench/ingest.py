"""Benchmark: full Fashion-MNIST ingest (70,000 images) and its no-op rerun, side by side.

    make bench-ingest          # or: .venv/bin/python -m bench.ingest [--limit N]

Runs the real CLI in a subprocess against a fresh LOOKALIKE_HOME and samples the resident
memory of the whole process tree (Python driver, Spark JVM, Python workers) every 0.2 s.
Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants (JVM, Python workers)."""
    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


def timed_run(args: list[str], env: dict[str, str]) -> dict:
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    ps = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(ps))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{out.decode()[-3000:]}")
    return {"wall_seconds": round(seconds, 1), "peak_rss_mib": round(peak / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="records per split (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest.json")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    env = os.environ | {"LOOKALIKE_HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    summary_file = home / "summary.json"
    cmd = [str(BIN / "lookalike"), "ingest", "fashion-mnist", "--summary-file", str(summary_file)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]

    runs = {}
    for name in ("first_ingest", "rerun_no_changes"):
        print(f"[bench] {name} ...", flush=True)
        measured = timed_run(cmd, env)
        summary = json.loads(summary_file.read_text())
        measured |= {
            k: summary[k]
            for k in ("rows_read", "inserted", "updated", "unchanged", "version_after", "seconds")
        }
        measured["job_seconds"] = measured.pop("seconds")
        measured["images_per_second_job"] = round(summary["rows_read"] / summary["seconds"])
        measured["images_per_second_wall"] = round(summary["rows_read"] / measured["wall_seconds"])
        runs[name] = measured
        print(f"[bench] {name}: {json.dumps(measured)}", flush=True)

    table_bytes = sum(f.stat().st_size for f in (home / "lake" / "catalog").rglob("*.parquet"))
    result = {
        "benchmark": "ingest",
        "command": "python -m bench.ingest" + (f" --limit {args.limit}" if args.limit else ""),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "spark_master": os.environ.get("LOOKALIKE_SPARK_MASTER", "local[2]"),
        "runs": runs,
        "rerun_vs_first_wall_ratio": round(
            runs["rerun_no_changes"]["wall_seconds"] / runs["first_ingest"]["wall_seconds"], 3
        ),
        "catalog_parquet_mib": round(table_bytes / 2**20, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
