"""Benchmark: the recommendation service under load on loopback, and a hot swap under load.

    .venv/bin/python -m bench.serving [--seconds 20]

Starts `lookalike serve` (a real uvicorn process on 127.0.0.1) on the production bundle of
LOOKALIKE_HOME (run `python -m bench.index` or `make demo` first), then, with the
asyncio/aiohttp load generator of bench/load.py in this process (same 2 cores as the server,
which it competes with):
1. by-id: closed loop, 32 connections, GET /v1/items/{id}/similar?k=10 over rotating ids;
   then the same with wrk (C, one thread, `apt-get install wrk`) at 4, 8, 16 and 32
   connections, a generator that leaves the server most of the CPU; then open loop at
   1,000/s from this process (GETs through ``KeepAlivePool``, raw keep-alive HTTP/1.1:
   aiohttp alone took a core at that rate);
2. upload: open loop at 50 requests/s, POST /v1/similar with catalogue photos (PNG);
3. swap: open loop by-id at 200 requests/s while a new bundle version is published and
   `production` moves to it; counts failed requests and p99 around the swap.
Latency of open-loop requests is measured from their scheduled start (no coordinated
omission), after 2 s at the same rate that warm the client's connection pool. Every run
is bounded in time and requests. Writes bench/results/serving.json.

    .venv/bin/python -m bench.serving --synthetic-items 1000000 [--synthetic-swap-seconds 180]

serves a SYNTHETIC bundle instead, in its own LOOKALIKE_HOME (a temp dir, removed after;
LOOKALIKE_HOME's own bundles, index versions and aliases are untouched): 1M clustered unit
vectors (bench/synthetic.py's generator, d=128), a ScaNN index built and published through the
library's full-build steps (recall gate included), an untrained encoder of the default
architecture (no photos: by-id queries never call it), registered with ``publish_bundle``.
Measures the bundle's load time in the service (alias move -> loaded), the service's RSS
(/proc/<pid>/status VmRSS; VmHWM for the peak during the swap), p99 of by-id at
--by-id-rate (1,000/s), and failed requests while a second version is published mid-load
(`lookalike bundle publish` in its own process, 5 s into a --synthetic-swap-seconds run
at --swap-rate). Targets: rss <= 2 x vectors (n*d*4 bytes) + 1.5 GiB, p99 <= 20 ms,
0 failed. Writes bench/results/serving-synthetic.json.

    .venv/bin/python -m bench.serving --million [1000000]

serves the product's own vectors instead (issue 46): ``bench.million``'s set (the served
encoder over augmented Fashion-MNIST, from LOOKALIKE_HOME's cache or built there) in a home of
its own, indexed and published twice with the library's full-build steps, beside a copy of
the encoder that embedded it. By-id at --by-id-rate, upload (held-out test photos, PNG) at
--upload-rate, then the swap as above. Targets: RSS after load <= 1.5 x vectors + 1.5 GiB,
by-id p99 <= 20 ms, upload p99 <= 50 ms, 0 failed across the swap (its p99 reported).
Writes bench/results/serving-1m.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.load import (
    KeepAlivePool,
    closed_loop,
    open_loop,
    run_loop,
    slow_episodes,
    stats,
    wrk_closed_loop,
)
from bench.million import add_million_argument
from bench.process import free_port, proc_bytes, start_server, stop_server, wait_alive, wait_ready
from bench.synthetic import (
    index_versions,
    register_stub_encoder,
    synthetic_id,
    synthetic_index_versions,
    use_home,
)

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--wrk-connections", type=lambda v: [int(c) for c in v.split(",")], default=[4, 8, 16, 32]
    )
    parser.add_argument("--by-id-rate", type=float, default=1000.0)
    parser.add_argument("--upload-rate", type=float, default=50.0)
    parser.add_argument("--swap-rate", type=float, default=200.0)
    parser.add_argument(
        "--synthetic-items",
        type=int,
        default=0,
        help="serve a synthetic bundle of this many items (e.g. 1000000) in its own home "
        "instead of LOOKALIKE_HOME's production bundle; 0: off",
    )
    parser.add_argument("--synthetic-dim", type=int, default=128)
    parser.add_argument(
        "--synthetic-swap-seconds",
        type=float,
        default=180.0,
        help="length of the synthetic swap run: publishing and loading a 1M bundle take minutes",
    )
    parser.add_argument(
        "--synthetic-home", type=Path, help="its LOOKALIKE_HOME (default: a temp dir, removed)"
    )
    add_million_argument(
        parser,
        "serve a bundle of bench.million's set (the product's own vectors; 1,000,000 "
        "when no number is given) in its own home, by-id, upload and a swap; 0: off",
    )
    parser.add_argument("--million-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default bench/results/serving[-...].json")
    args = parser.parse_args()
    if args.out is None:
        name = "serving.json"
        if args.synthetic_items:
            name = "serving-synthetic.json"
        if args.million:
            name = "serving-1m.json"
        args.out = REPO / "bench" / "results" / name
    return args


def main() -> None:
    args = parse_args()
    from lookalike.cli.logs import configure_logging

    configure_logging()  # the library's progress lines on stderr, as under `lookalike`
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.million:
        out = run_million(args)
    elif args.synthetic_items:
        out = run_synthetic(args)
    else:
        out = run_catalog(args)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["targets"], indent=2))


def header() -> dict[str, Any]:
    return {
        "benchmark": "serving",
        "command": "python -m bench.serving " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "note": "load generator and server share the same cores",
    }


def run_catalog(args: argparse.Namespace) -> dict[str, Any]:
    """The default run: LOOKALIKE_HOME's production bundle, by-id, upload, and a swap to a
    freshly built index version of the same catalogue."""
    import httpx

    from lookalike.config import get_settings
    from lookalike.similarity.registry import production_version

    settings = get_settings()
    if production_version(settings) is None:
        sys.exit(
            "no production bundle in LOOKALIKE_HOME: "
            "run `python -m bench.index` or `make demo` first"
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, os.environ | {"LOOKALIKE_SERVE_POLL_SECONDS": "1"})
    out = header()
    try:
        t = time.monotonic()
        out["versions_before"] = wait_ready(url)
        out["startup_seconds"] = round(time.monotonic() - t, 1)
        c = httpx.Client(base_url=url)
        ids = [
            i["item_id"]
            for i in c.get("/v1/items", params={"limit": 200, "seed": 1}).json()["items"]
        ]
        photos = [c.get(f"/v1/items/{i}/image").content for i in ids[:20]]
        out |= by_id_runs(url, ids, args)
        out["upload"] = upload_run(url, photos, args.upload_rate, args.seconds)

        print("[bench] hot swap under load: preparing a new index version", flush=True)
        from lookalike.registry.encoders import fetch_encoder
        from lookalike.similarity.index import build_full
        from lookalike.similarity.registry import publish_bundle

        new_index = build_full(settings, fetch_encoder(settings, "champion"))
        import pyarrow.parquet as pq

        kept = set(pq.read_table(Path(new_index.path) / "items.parquet").column(0).to_pylist())
        ids = [i for i in ids if i in kept]  # items in both versions: a 404 is not a swap error

        def publish() -> str:
            return publish_bundle(settings, Path(new_index.path)).bundle_version

        out["swap"] = swap_under_load(
            url, ids, args.swap_rate, args.seconds, args.seconds / 4, publish
        )
        out["versions_after"] = c.get("/v1/version").json()
    finally:
        stop_server(server)
    out["targets"] = catalog_targets(out, args)
    return out


def by_id_runs(url: str, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """By-id: closed loop from this process, then with wrk (when installed), then open loop."""
    out: dict[str, Any] = {}
    print("[bench] by-id, closed loop", flush=True)
    run_loop(closed_loop(url, ids, 3, args.connections))  # warm-up
    out["by_id"] = run_loop(closed_loop(url, ids, args.seconds, args.connections))
    print(json.dumps(out["by_id"]), flush=True)
    if shutil.which("wrk"):
        out["by_id_wrk"] = []
        for conns in args.wrk_connections:
            print(f"[bench] by-id, closed loop, wrk, {conns} connections", flush=True)
            out["by_id_wrk"].append(wrk_closed_loop(url, ids, args.seconds / 2, conns))
            print(json.dumps(out["by_id_wrk"][-1]), flush=True)
    else:
        print("[bench] wrk not found (apt-get install wrk): skipping the wrk runs", flush=True)
    out["by_id_open_loop"] = by_id_open_loop(url, ids, args.by_id_rate, args.seconds)
    return out


def by_id_open_loop(url: str, ids: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """GET /v1/items/{id}/similar at a fixed rate (latency from the scheduled start)."""

    async def by_id_plain(client: KeepAlivePool, i: int) -> tuple[int, str | None]:
        status, _ = await client.get(f"/v1/items/{ids[i % len(ids)]}/similar?k=10")
        return status, None

    print(f"[bench] by-id, open loop at {rate}/s", flush=True)
    res, elapsed = run_loop(open_loop(by_id_plain, rate, seconds, url=url))
    result = stats([r[1] for r in res], [r[2] for r in res], elapsed) | {"target_rate": rate}
    result["slow_episodes"] = slow_episodes(res)
    print(json.dumps(result), flush=True)
    return result


def upload_run(url: str, photos: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """POST /v1/similar with catalogue photos at a fixed rate."""
    print(f"[bench] upload, open loop at {rate}/s", flush=True)

    async def upload(session: Any, i: int) -> tuple[int, str | None]:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("photo", photos[i % len(photos)], filename="p.png", content_type="image/png")
        async with session.post(f"{url}/v1/similar?k=10", data=form) as r:
            await r.read()
            return r.status, None

    res, elapsed = run_loop(open_loop(upload, rate, seconds))
    result = stats([r[1] for r in res], [r[2] for r in res], elapsed) | {"target_rate": rate}
    print(json.dumps(result), flush=True)
    return result


def swap_under_load(
    url: str,
    ids: list[str],
    rate: float,
    seconds: float,
    publish_after: float,
    publish: Callable[[], str],
) -> dict[str, Any]:
    """By-id at ``rate`` for ``seconds``; ``publish()`` (blocking, returns the new bundle
    version) runs on a thread ``publish_after`` seconds in. Counts failed requests and the
    latency around the swap, and when the new version first answered."""
    swap: dict[str, Any] = {}

    async def by_id(client: KeepAlivePool, i: int) -> tuple[int, str | None]:
        status, body = await client.get(f"/v1/items/{ids[i % len(ids)]}/similar?k=10")
        if status != 200:
            return status, None
        return 200, json.loads(body)["versions"]["bundle_version"]

    async def publish_midway(t0: float) -> None:
        await asyncio.sleep(publish_after)
        swap["published_at"] = time.perf_counter() - t0
        swap["new_version"] = await asyncio.to_thread(publish)
        swap["published_done_at"] = time.perf_counter() - t0

    res, elapsed = run_loop(open_loop(by_id, rate, seconds, publish_midway, url=url))
    new = swap["new_version"]
    first_new = next((r[0] for r in res if r[3] == new), None)
    window = [r for r in res if swap["published_at"] <= r[0] <= (first_new or elapsed) + 1.0]
    out = stats([r[1] for r in res], [r[2] for r in res], elapsed) | {
        "rate": rate,
        "new_bundle_version": new,
        "published_at_s": round(swap["published_at"], 2),
        "publish_took_s": round(swap["published_done_at"] - swap["published_at"], 2),
        "first_response_from_new_version_s": round(first_new, 2) if first_new else None,
        "during_swap": stats([r[1] for r in window], [r[2] for r in window], 1.0)
        | {"window_requests": len(window)},
        "versions_seen": sorted({r[3] for r in res if r[3]}),
    }
    out["during_swap"].pop("requests_per_second")
    print(json.dumps(out), flush=True)
    return out


def catalog_targets(out: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    o = out["by_id_open_loop"]
    meets = [
        w["connections"]
        for w in out.get("by_id_wrk", [])
        if w["requests_per_second"] >= 1000 and w["p99_ms"] <= 20 and w["failed"] == 0
    ]
    return {
        "by_id_1000_rps_p99_20ms_wrk": bool(meets),
        "by_id_wrk_connections_meeting_it": meets,
        "by_id_open_loop_1000_per_s_p99_20ms": o["requests_per_second"] >= 0.95 * args.by_id_rate
        and o["failed"] == 0
        and o["p99_ms"] <= 20,
        "upload_p99_50ms_at_50_rps": out["upload"]["p99_ms"] <= 50
        and out["upload"]["requests_per_second"] >= 0.95 * args.upload_rate,
        "zero_failed_across_swap": out["swap"]["failed"] == 0,
    }


# ----------------------------------------------------------------- synthetic bundle


def load_first_bundle(settings: Any, url: str, index_dir: Path) -> dict[str, Any]:
    """Publish v1 while the service is up with nothing loaded, and time its load there: from
    the alias move to the service's ``loaded_at`` (includes up to one 1 s alias poll), and
    to /readyz answering."""
    from datetime import datetime

    from lookalike.similarity.registry import publish_bundle

    print("[bench] publishing the first bundle (v1)", flush=True)
    t = time.monotonic()
    result = publish_bundle(settings, index_dir)
    moved, moved_wall = time.monotonic(), time.time()
    versions = wait_ready(url, timeout=1800, poll=0.1)
    ready = time.monotonic()
    loaded = datetime.fromisoformat(versions["loaded_at"]).timestamp()
    return {
        "publish_seconds": round(moved - t, 1),
        "bundle_version": result.bundle_version,
        "bundle_load_seconds": round(loaded - moved_wall, 2),
        "bundle_load_note": "cold service: the first bundle also imports TensorFlow there; "
        "includes up to one 1 s alias poll",
        "ready_seconds": round(ready - moved, 2),
        "versions_before": versions,
    }


def cli_publisher(env: dict[str, str], index_version: str) -> Callable[[], str]:
    """``lookalike bundle publish --index NAME`` in its own process (the swap's publish):
    in this one, a 1M bundle's checksums, self-check load and MLflow copy would stall the
    load generator. Returns the new bundle version."""
    lookalike = str(Path(sys.executable).parent / "lookalike")

    def publish() -> str:
        with tempfile.TemporaryDirectory() as tmp:
            summary = Path(tmp) / "publish.json"
            cmd = [lookalike, "bundle", "publish", "--index", index_version]
            cmd += ["--summary-file", str(summary)]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            return str(json.loads(summary.read_text())["bundle_version"])

    return publish


def serve_versions(
    settings: Any,
    args: argparse.Namespace,
    versions: list[dict[str, Any]],
    ids: list[str],
    facts: dict[str, Any],
    photos: list[bytes] | None = None,
) -> dict[str, Any]:
    """The service on a bench home's first index version: load time, RSS, by-id p99 at the
    target rate, upload p99 (when ``photos``), and failed requests while the second version
    is published mid-load. ``facts`` (items, dim, vectors_bytes) head the result."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"LOOKALIKE_SERVE_POLL_SECONDS": "1"}
    server = start_server(port, env)
    res: dict[str, Any] = dict(facts)
    try:
        wait_alive(url)
        res |= load_first_bundle(settings, url, Path(versions[0]["path"]))
        res["rss_after_load_bytes"] = proc_bytes(server.pid)
        run_loop(closed_loop(url, ids, 3, args.connections))  # warm-up
        res["by_id_open_loop"] = by_id_open_loop(url, ids, args.by_id_rate, args.seconds)
        res["p99_ms"] = res["by_id_open_loop"]["p99_ms"]
        if photos:
            res["upload"] = upload_run(url, photos, args.upload_rate, args.seconds)
        res["rss_bytes"] = proc_bytes(server.pid)  # one bundle, after the by-id run
        print(f"[bench] swap under load: publishing {versions[1]['index_version']}", flush=True)
        publish = cli_publisher(env, versions[1]["index_version"])
        res["swap"] = swap_under_load(
            url, ids, args.swap_rate, args.synthetic_swap_seconds, 5.0, publish
        )
        res["failed_requests"] = res["swap"]["failed"]
        res["rss_after_swap_bytes"] = proc_bytes(server.pid)
        res["rss_peak_bytes"] = proc_bytes(server.pid, "VmHWM")  # two bundles during the swap
        res["versions_after"] = httpx.get(f"{url}/v1/version", timeout=10).json()
    finally:
        stop_server(server)
    return res


def serve_synthetic(
    settings: Any, args: argparse.Namespace, versions: list[dict[str, Any]]
) -> dict[str, Any]:
    """``serve_versions`` on the synthetic bundle, by-id only (it has no photos)."""
    n, dim = args.synthetic_items, args.synthetic_dim
    rng = np.random.default_rng(1)
    ids = [synthetic_id(int(j)) for j in rng.choice(n, min(n, 20_000), replace=False)]
    facts = {"items": n, "dim": dim, "vectors_bytes": n * dim * 4}
    return serve_versions(settings, args, versions, ids, facts)


def synthetic_targets(res: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """RSS within 2x the vectors + 1.5 GiB, p99 <= 20 ms at the target rate, no failed
    request across the swap (which must have completed within the run)."""
    limit = 2 * res["vectors_bytes"] + int(1.5 * 2**30)
    o, swap = res["by_id_open_loop"], res["swap"]
    completed = swap["first_response_from_new_version_s"] is not None
    return {
        "rss": {
            "rss_bytes": res["rss_bytes"],
            "vectors_bytes": res["vectors_bytes"],
            "limit_bytes": limit,
            "target": "rss_bytes <= 2 * vectors_bytes + 1.5 GiB (one bundle, after the by-id run)",
            "met": res["rss_bytes"] <= limit,
        },
        "p99": {
            "p99_ms": o["p99_ms"],
            "target_rate": args.by_id_rate,
            "requests_per_second": o["requests_per_second"],
            "target": "p99_ms <= 20 at the target rate (>= 95% of it achieved, none failed)",
            "met": o["p99_ms"] is not None
            and o["p99_ms"] <= 20
            and o["requests_per_second"] >= 0.95 * args.by_id_rate
            and o["failed"] == 0,
        },
        "failed_requests": {
            "failed_requests": swap["failed"],
            "swap_completed": completed,
            "target": "0 failed, and the new version answered within the run",
            "met": swap["failed"] == 0 and completed,
        },
    }


def run_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    """--synthetic-items: a synthetic bundle in its own home (a temp dir removed afterwards
    unless --synthetic-home), registered and served as the real one is."""
    home = args.synthetic_home or Path(tempfile.mkdtemp(prefix="lookalike-bench-synthetic-"))
    settings = use_home(home)
    out = header() | {"home": str(home)}
    try:
        t = time.monotonic()
        encoder = register_stub_encoder(settings, args.synthetic_dim)
        out["prepare"] = synthetic_index_versions(
            settings, encoder, args.synthetic_items, args.synthetic_dim
        )
        out["prepare"] |= {
            "encoder": f"{encoder.name}/{encoder.version} (untrained)",
            "seconds": round(time.monotonic() - t, 1),
        }
        out["synthetic"] = serve_synthetic(settings, args, out["prepare"]["versions"])
    finally:
        if args.synthetic_home is None:
            shutil.rmtree(home, ignore_errors=True)
            out["home_removed"] = True
    out["synthetic"]["targets"] = synthetic_targets(out["synthetic"], args)
    names = {
        "rss": "rss_within_2x_vectors_plus_1_5_gib",
        "p99": "by_id_p99_20ms_at_target_rate",
        "failed_requests": "zero_failed_across_swap",
    }
    out["targets"] = {names[k]: v["met"] for k, v in out["synthetic"]["targets"].items()}
    return out


# ----------------------------------------------------------------- the million


def run_million(args: argparse.Namespace) -> dict[str, Any]:
    """--million: bench.million's set (read from LOOKALIKE_HOME's cache, or built there)
    served from a home of its own (a temp dir removed afterwards unless --synthetic-home),
    with a copy of the encoder that embedded it, so uploads are embedded as the set was."""
    from bench.million import (
        build,
        held_out_pngs,
        items_table,
        million_id,
        register_encoder_copy,
        served_encoder_dir,
    )
    from lookalike.config import get_settings

    main_settings = get_settings()
    m = build(main_settings, args.million, args.million_seed)
    model_dir = served_encoder_dir(main_settings)
    photos = held_out_pngs(main_settings, args.million_seed)
    home = args.synthetic_home or Path(tempfile.mkdtemp(prefix="lookalike-bench-million-"))
    settings = use_home(home)
    n, dim = m.vectors.shape
    out = header() | {"home": str(home), "set": m.meta | {"cache": str(m.path)}}
    try:
        t = time.monotonic()
        encoder = register_encoder_copy(settings, model_dir)
        prepare = index_versions(settings, encoder, m.vectors, items_table(n), "bench.million")
        out["prepare"] = prepare | {"seconds": round(time.monotonic() - t, 1)}
        facts = {"items": n, "dim": dim, "vectors_bytes": int(m.vectors.nbytes)}
        del m  # the service's memory is what is measured; this process's need not grow it
        ids = [million_id(int(j)) for j in np.random.default_rng(1).choice(n, min(n, 20_000))]
        out["million"] = serve_versions(settings, args, prepare["versions"], ids, facts, photos)
    finally:
        if args.synthetic_home is None:
            shutil.rmtree(home, ignore_errors=True)
            out["home_removed"] = True
    out |= million_headline(out["million"])
    out["targets"] = million_targets(out["million"], args)
    return out


def million_headline(res: dict[str, Any]) -> dict[str, Any]:
    """serving-1m.json's top-level keys (issue 46)."""
    return {
        "rss_bytes": res["rss_bytes"],
        "vectors_bytes": res["vectors_bytes"],
        "by_id": {"p99_ms": res["by_id_open_loop"]["p99_ms"]},
        "upload": {"p99_ms": res["upload"]["p99_ms"]},
        "swap": {
            "failed": res["swap"]["failed"],
            "p99_ms": res["swap"]["during_swap"]["p99_ms"],
        },
    }


def million_targets(res: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    """RSS after load <= 1.5x the stored vectors + 1.5 GiB; by-id p99 <= 20 ms at the by-id
    rate and upload p99 <= 50 ms at the upload rate (>= 95% of each rate achieved, none
    failed); 0 failed requests across a swap that completed within the run."""

    def at_rate(run: dict[str, Any], rate: float, p99: float) -> bool:
        ok = run["p99_ms"] is not None and run["p99_ms"] <= p99 and run["failed"] == 0
        return bool(ok and run["requests_per_second"] >= 0.95 * rate)

    swap = res["swap"]
    return {
        "rss_within_1_5x_vectors_plus_1_5_gib": res["rss_bytes"]
        <= 1.5 * res["vectors_bytes"] + 1.5 * 2**30,
        "by_id_p99_20ms_at_target_rate": at_rate(res["by_id_open_loop"], args.by_id_rate, 20),
        "upload_p99_50ms_at_target_rate": at_rate(res["upload"], args.upload_rate, 50),
        "zero_failed_across_swap": swap["failed"] == 0
        and swap["first_response_from_new_version_s"] is not None,
    }


if __name__ == "__main__":
    main()
