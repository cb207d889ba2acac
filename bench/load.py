"""The HTTP load generator of the service benchmark: closed loop (aiohttp, or wrk), open loop
at a fixed rate (latency from each request's scheduled start: no coordinated omission), and
the statistics of what came back. It runs in the benchmark's own process, on the same cores
as the service under test, so it is kept cheap (uvloop, raw keep-alive GETs)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np


def run_loop(coro: Any) -> Any:
    """Run the load generator on uvloop (as the service runs): asyncio's own loop costs
    about twice the CPU per request, and on 2 cores the generator shares them with the
    service under test."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class KeepAlivePool:
    """A minimal HTTP/1.1 keep-alive GET client for the open-loop generator.

    aiohttp costs this process about 1 ms of CPU per request: at 1,000/s a whole core of the
    two the service under test also needs (2026-12-01: the generator at 99% CPU, the service
    starved at 600/s). Raw streams over reused connections cost a few tens of microseconds;
    every request still gets its own connection while it is in flight (no pipelining), so
    a slow answer never delays the next request's start.
    """

    def __init__(self, url: str) -> None:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of GET ``path``; OSError or IncompleteReadError when it fails.
        A kept-alive connection the server closed while it was idle (uvicorn: after 5 s)
        is retried once on a new one, as HTTP clients do for idempotent requests."""
        while True:
            reused = bool(self.idle)
            if reused:
                conn = self.idle.pop()
            else:
                conn = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(conn, path)
            except (OSError, asyncio.IncompleteReadError):
                conn[1].close()
                if not reused:
                    raise

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str
    ) -> tuple[int, bytes]:
        reader, writer = conn
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        at = head.lower().find(b"content-length:")
        if at < 0:
            raise OSError(f"no content-length in {head[:200]!r}")
        body = await reader.readexactly(int(head[at + 15 : head.find(b"\r\n", at)]))
        self.idle.append(conn)
        return status, body

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


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
    make_request: Any,
    rate: float,
    seconds: float,
    on_tick: Any = None,
    warmup: float = 2.0,
    url: str | None = None,
    stop: Any = None,
) -> tuple[list[tuple[float, float, int, str | None]], float]:
    """Requests at a fixed rate; returns [(scheduled offset, latency, status, version)].
    ``make_request(client, i)`` gets an aiohttp session, or with ``url`` a ``KeepAlivePool``
    (GETs only, a fraction of aiohttp's CPU per request).

    Each request is started at its due time by one scheduling loop (creating every task up
    front made the loop's first pass over thousands of them a stall of its own, reported as
    the service's latency). The first ``warmup`` seconds run at the same rate but are not
    reported: they open the client's connection pool. ``on_tick`` starts with the measured
    period. ``stop`` (a ``threading.Event``) ends the run early when set.
    """
    import gc

    import aiohttp

    gc.collect()
    gc.freeze()  # the generator's own full GC passes over this process's heap are not latency
    results: list[tuple[float, float, int, str | None]] = []
    warm, n = int(rate * warmup), int(rate * seconds)
    failures = (aiohttp.ClientError, OSError, asyncio.IncompleteReadError)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        client = session if url is None else KeepAlivePool(url)

        async def one(i: int, due: float) -> None:
            try:
                status, version = await make_request(client, i)
            except failures:
                status, version = 0, None
            if i >= 0:
                results.append((due - t0, time.perf_counter() - due, status, version))

        t0 = time.perf_counter() + warmup
        tasks = []
        for i in range(-warm, n):
            if stop is not None and stop.is_set():
                break
            due = t0 + i / rate
            if i == 0 and on_tick is not None:
                tasks.append(asyncio.create_task(on_tick(t0)))
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        if isinstance(client, KeepAlivePool):
            await client.close()
    return sorted(results), elapsed


def slow_episodes(
    res: list[tuple[float, float, int, str | None]], over_s: float = 0.02, gap_s: float = 0.2
) -> list[dict[str, float]]:
    """When the slow requests (latency > ``over_s``) happened: runs of them closer than
    ``gap_s`` apart, with their count and worst latency. One long run is a stall (of the
    server or the generator); many short ones are queueing at saturation."""
    episodes: list[dict[str, float]] = []
    for offset, latency, _, _ in res:
        if latency <= over_s:
            continue
        if episodes and offset - episodes[-1]["end_s"] < gap_s:
            e = episodes[-1]
            e["end_s"], e["requests"] = round(offset, 3), e["requests"] + 1
            e["max_ms"] = max(e["max_ms"], round(latency * 1000, 1))
        else:
            start = round(offset, 3)
            episodes.append(
                {
                    "start_s": start,
                    "end_s": start,
                    "requests": 1,
                    "max_ms": round(latency * 1000, 1),
                }
            )
    return episodes
