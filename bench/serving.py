"""Benchmark: the recommendation service under load on loopback, and a hot swap under load.

    .venv/bin/python bench/serving.py [--seconds 20]

Starts `lookalike serve` (a real uvicorn process on 127.0.0.1) on the production bundle of
LOOKALIKE_HOME (run bench/index.py or `make demo` first), then, with an asyncio/aiohttp load
generator in this process (same 2 cores as the server, which it competes with):
1. by-id: closed loop, 32 connections, GET /v1/items/{id}/similar?k=10 over rotating ids;
   then the same with wrk (C, one thread, `apt-get install wrk`) at 4, 8, 16 and 32
   connections, a generator that leaves the server most of the CPU; then open loop at
   1,000/s from this process;
2. upload: open loop at 50 requests/s, POST /v1/similar with catalogue photos (PNG);
3. swap: open loop by-id at 200 requests/s while a new bundle version is published and
   `production` moves to it; counts failed requests and p99 around the swap.
Latency of open-loop requests is measured from their scheduled start (no coordinated
omission), after 1 s at the same rate that warms the client's connection pool. Every run
is bounded in time and requests. Writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else None


def stats(lat: list[float], statuses: list[int], seconds: float) -> dict[str, Any]:
    ok = sum(1 for s in statuses if s == 200)
    codes: dict[str, int] = {}
    for s in statuses:
        codes[str(s)] = codes.get(str(s), 0) + 1
    return {
        "status_codes": codes,
        "requests": len(statuses),
        "ok": ok,
        "failed": len(statuses) - ok,
        "requests_per_second": round(len(statuses) / seconds, 1),
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "max_ms": pct(lat, 100),
    }


async def closed_loop(url: str, ids: list[str], seconds: float, conns: int) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    statuses: list[int] = []
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(n: int) -> None:
            i = n
            while time.perf_counter() < stop:
                item = ids[i % len(ids)]
                i += conns
                t = time.perf_counter()
                try:
                    async with session.get(f"{url}/v1/items/{item}/similar?k=10") as r:
                        await r.read()
                        statuses.append(r.status)
                except aiohttp.ClientError:
                    statuses.append(0)
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(conns)))
        elapsed = time.perf_counter() - t0
    return stats(lat, statuses, elapsed) | {"connections": conns, "seconds": round(elapsed, 1)}


WRK_SCRIPT = """
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/v1/items/" .. ids[(i %% #ids) + 1] .. "/similar?k=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\": %%d, \\"us\\": %%d, \\"socket_errors\\": %%d, \\"non_2xx\\": %%d, "
      .. "\\"p50\\": %%d, \\"p90\\": %%d, \\"p99\\": %%d, \\"max\\": %%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_closed_loop(url: str, ids: list[str], seconds: float, conns: int) -> dict[str, Any]:
    """By-id, closed loop with wrk (C, one thread): the generator costs the server little CPU."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ids.txt").write_text("\n".join(ids) + "\n")
        script = Path(tmp) / "by_id.lua"
        script.write_text(WRK_SCRIPT % (Path(tmp) / "ids.txt"))
        cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    failed = r["socket_errors"] + r["non_2xx"]
    return {
        "generator": "wrk 1 thread",
        "requests": r["requests"],
        "ok": r["requests"] - r["non_2xx"],
        "failed": failed,
        "requests_per_second": round(r["requests"] / (r["us"] / 1e6), 1),
        "p50_ms": round(r["p50"] / 1000, 2),
        "p90_ms": round(r["p90"] / 1000, 2),
        "p99_ms": round(r["p99"] / 1000, 2),
        "max_ms": round(r["max"] / 1000, 2),
        "connections": conns,
        "seconds": round(r["us"] / 1e6, 1),
    }


async def open_loop(
    make_request: Any, rate: float, seconds: float, on_tick: Any = None, warmup: float = 1.0
) -> tuple[list[tuple[float, float, int, str | None]], float]:
    """Requests at a fixed rate; returns [(scheduled offset, latency, status, version)].

    The first ``warmup`` seconds run at the same rate but are not reported: they open the
    client's connection pool (a cold pool put every 0.5 s of cold start into the p99).
    ``on_tick`` starts with the measured period.
    """
    import gc

    import aiohttp

    gc.collect()
    gc.freeze()  # the generator's own full GC passes over this process's heap are not latency
    results: list[tuple[float, float, int, str | None]] = []
    warm, n = int(rate * warmup), int(rate * seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        t0 = time.perf_counter() + warmup

        async def one(i: int) -> None:
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                status, version = await make_request(session, i)
            except aiohttp.ClientError:
                status, version = 0, None
            if i >= 0:
                results.append((due - t0, time.perf_counter() - due, status, version))

        tasks = [asyncio.create_task(one(i)) for i in range(-warm, n)]
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        if on_tick is not None:
            await on_tick(t0)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return sorted(results), elapsed


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen:
    lookalike = str(Path(sys.executable).parent / "lookalike")
    return subprocess.Popen(
        [lookalike, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(REPO / "bench" / "results" / "serving-server.log", "w"),
    )


def wait_ready(url: str, timeout: float = 300) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            if r.status_code == 200:
                return r.json()["versions"]
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"service at {url} not ready after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--wrk-connections", type=lambda v: [int(c) for c in v.split(",")], default=[4, 8, 16, 32]
    )
    parser.add_argument("--by-id-rate", type=float, default=1000.0)
    parser.add_argument("--upload-rate", type=float, default=50.0)
    parser.add_argument("--swap-rate", type=float, default=200.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.json")
    args = parser.parse_args()

    import httpx

    from lookalike.bundle.registry import production_version
    from lookalike.cli.logs import configure_logging
    from lookalike.config import get_settings

    configure_logging()  # the library's progress lines on stderr, as under `lookalike`
    settings = get_settings()
    if production_version(settings) is None:
        sys.exit("no production bundle in LOOKALIKE_HOME: run bench/index.py or `make demo` first")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"LOOKALIKE_SERVE_POLL_SECONDS": "1"}
    server = start_server(port, env)
    out: dict[str, Any] = {
        "benchmark": "serving",
        "command": "python bench/serving.py " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "note": "load generator and server share the same cores",
    }
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

        print("[bench] by-id, closed loop", flush=True)
        asyncio.run(closed_loop(url, ids, 3, args.connections))  # warm-up
        out["by_id"] = asyncio.run(closed_loop(url, ids, args.seconds, args.connections))
        print(json.dumps(out["by_id"]), flush=True)
        if shutil.which("wrk"):
            out["by_id_wrk"] = []
            for conns in args.wrk_connections:
                print(f"[bench] by-id, closed loop, wrk, {conns} connections", flush=True)
                out["by_id_wrk"].append(wrk_closed_loop(url, ids, args.seconds / 2, conns))
                print(json.dumps(out["by_id_wrk"][-1]), flush=True)
        else:
            print("[bench] wrk not found (apt-get install wrk): skipping the wrk runs", flush=True)

        async def by_id_plain(session: Any, i: int) -> tuple[int, str | None]:
            async with session.get(f"{url}/v1/items/{ids[i % len(ids)]}/similar?k=10") as r:
                await r.read()
                return r.status, None

        print(f"[bench] by-id, open loop at {args.by_id_rate}/s", flush=True)
        res, elapsed = asyncio.run(open_loop(by_id_plain, args.by_id_rate, args.seconds))
        out["by_id_open_loop"] = stats([r[1] for r in res], [r[2] for r in res], elapsed) | {
            "target_rate": args.by_id_rate
        }
        print(json.dumps(out["by_id_open_loop"]), flush=True)

        print(f"[bench] upload, open loop at {args.upload_rate}/s", flush=True)

        async def upload(session: Any, i: int) -> tuple[int, str | None]:
            import aiohttp

            form = aiohttp.FormData()
            form.add_field(
                "photo", photos[i % len(photos)], filename="p.png", content_type="image/png"
            )
            async with session.post(f"{url}/v1/similar?k=10", data=form) as r:
                await r.read()
                return r.status, None

        res, elapsed = asyncio.run(open_loop(upload, args.upload_rate, args.seconds))
        out["upload"] = stats([r[1] for r in res], [r[2] for r in res], elapsed) | {
            "target_rate": args.upload_rate
        }
        print(json.dumps(out["upload"]), flush=True)

        print("[bench] hot swap under load: preparing a new index version", flush=True)
        from lookalike.bundle.registry import publish_bundle
        from lookalike.index.builder import build_full
        from lookalike.registry.encoders import fetch_encoder

        new_index = build_full(settings, fetch_encoder(settings, "champion"))
        import pyarrow.parquet as pq

        kept = set(pq.read_table(Path(new_index.path) / "items.parquet").column(0).to_pylist())
        ids = [i for i in ids if i in kept]  # items in both versions: a 404 is not a swap error
        swap: dict[str, Any] = {}

        async def by_id(session: Any, i: int) -> tuple[int, str | None]:
            async with session.get(f"{url}/v1/items/{ids[i % len(ids)]}/similar?k=10") as r:
                body = await r.read()
                if r.status != 200:
                    return r.status, None
                return 200, json.loads(body)["versions"]["bundle_version"]

        async def publish_midway(t0: float) -> None:
            await asyncio.sleep(args.seconds / 4)
            swap["published_at"] = time.perf_counter() - t0
            result = await asyncio.to_thread(publish_bundle, settings, Path(new_index.path))
            swap["published_done_at"] = time.perf_counter() - t0
            swap["new_version"] = result.bundle_version

        res, elapsed = asyncio.run(open_loop(by_id, args.swap_rate, args.seconds, publish_midway))
        new = swap["new_version"]
        first_new = next((r[0] for r in res if r[3] == new), None)
        window = [r for r in res if swap["published_at"] <= r[0] <= (first_new or elapsed) + 1.0]
        out["swap"] = stats([r[1] for r in res], [r[2] for r in res], elapsed) | {
            "rate": args.swap_rate,
            "new_bundle_version": new,
            "published_at_s": round(swap["published_at"], 2),
            "publish_took_s": round(swap["published_done_at"] - swap["published_at"], 2),
            "first_response_from_new_version_s": round(first_new, 2) if first_new else None,
            "during_swap": stats([r[1] for r in window], [r[2] for r in window], 1.0)
            | {"window_requests": len(window)},
            "versions_seen": sorted({r[3] for r in res if r[3]}),
        }
        out["swap"]["during_swap"].pop("requests_per_second")
        print(json.dumps(out["swap"]), flush=True)
        out["versions_after"] = c.get("/v1/version").json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    o = out["by_id_open_loop"]
    meets = [
        w["connections"]
        for w in out.get("by_id_wrk", [])
        if w["requests_per_second"] >= 1000 and w["p99_ms"] <= 20 and w["failed"] == 0
    ]
    out["targets"] = {
        "by_id_1000_rps_p99_20ms_wrk": bool(meets),
        "by_id_wrk_connections_meeting_it": meets,
        "by_id_open_loop_1000_per_s_p99_20ms": o["requests_per_second"] >= 0.95 * args.by_id_rate
        and o["failed"] == 0
        and o["p99_ms"] <= 20,
        "upload_p99_50ms_at_50_rps": out["upload"]["p99_ms"] <= 50
        and out["upload"]["requests_per_second"] >= 0.95 * args.upload_rate,
        "zero_failed_across_swap": out["swap"]["failed"] == 0,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["targets"], indent=2))


if __name__ == "__main__":
    main()
