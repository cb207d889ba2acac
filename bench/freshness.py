"""Benchmark: the embeddings change feed applied in place, on the served index's own vectors.

    .venv/bin/python -m bench.freshness [--hold-out 0.1] [--queries 1000]
    .venv/bin/python -m bench.freshness --stack [--cases one,ten,delete_ten]

In one process, on the vectors of the index version the service serves (LOOKALIKE_HOME, e.g.
after `make demo`), side by side:
1. recall: a snapshot of 90% of the items (the product's build parameters and the served
   version's publish tuning), then the other 10% upserted in place in steps of 100 (what the
   service applies from the feed, ``Recommender.apply``), against a full rebuild over all of
   them; recall@10 distance-aware (ann-benchmarks, what gates) and strict against exact
   search on ``--queries`` of the items; seconds per step of 100.
2. searches during updates: one-query searches (the by-id route's call) on two threads, alone
   and while a writer applies 100 upserts every 0.5 s; p50/p99 and their ratio.
3. bytes: one commit to a copy of the ``embeddings`` table for one new photo and for one
   replaced photo, against the bytes of a full index version (the snapshot the update used
   to write).
With ``--stack``, against the stack `make demo` left running (its scheduler, triggerer,
dag-processor and service, ``lookalike_catalog_fresh`` unpaused): lands Fashion-MNIST test
photos turned a quarter (no catalogue photo looks like them) in the landing store and measures,
per photo, the seconds from the file appearing until it is served (``/v1/items/{id}/similar``
answers and an upload of the photo returns it first), and for removals until the item is
gone; the bytes the store (lake and index versions) grew by in each case. Cases: ``one``,
``ten``, ``hundred`` (at once), ``delete_ten`` (10 of them removed), ``sustained`` (one photo
every 5 s for 10 minutes). All the while, by-id requests at a steady 200/s (open loop): each
case's p99 and failed requests, and the service's resident memory at the start and end of
the sustained case.
Targets (issue 45): recall@10 >= 0.98 after 10% upserted in place; bytes of a one-photo
update <= 1% of a snapshot's; p95 landed-to-served <= 60 s for 1 and 10 photos, <= 90 s
sustained, <= 120 s for 100; deletions gone within 60 s; by-id p99 <= 20 ms and no failed
request during the run; resident memory +5% at most over the sustained case. Writes
bench/results/freshness.json (``--stack``: merges its ``cases`` and ``serving`` into it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "results" / "freshness.json"
STEP = 100


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (in their own unit)."""
    return float(np.percentile(values, q))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hold-out", type=float, default=0.1, help="share upserted in place")
    p.add_argument("--queries", type=int, default=1000, help="recall queries")
    p.add_argument("--seconds", type=float, default=15.0, help="each latency run")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--stack", action="store_true", help="land photos on the running stack")
    p.add_argument("--cases", default="one,ten,delete_ten,hundred,sustained")
    p.add_argument("--rate", type=float, default=200.0, help="steady by-id requests/s")
    p.add_argument("--every", type=float, default=5.0, help="sustained: seconds between photos")
    p.add_argument("--sustained-minutes", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=600.0, help="per case")
    p.add_argument("--first", type=int, default=9000, help="first test photo to land")
    return p.parse_args()


def store_bytes(settings: Any) -> int:
    """Bytes under the lake and the index versions (local store)."""
    roots = [Path(settings.lake), Path(settings.index_uri)]
    return sum(p.stat().st_size for r in roots if r.exists() for p in r.rglob("*") if p.is_file())


class SteadyLoad:
    """By-id GETs at a fixed rate (open loop, latency from each request's due time) on a
    thread for the whole run; each case's p99 and failures are cut from its own window."""

    def __init__(self, url: str, ids: list[str], rate: float) -> None:
        self.url, self.ids, self.rate = url, ids, rate
        self.stop = threading.Event()
        self.t0 = 0.0
        self.results: list[tuple[float, float, int, str | None]] = []
        self.thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def _run(self) -> None:
        from bench.load import open_loop, run_loop

        ids = self.ids

        async def by_id(client: Any, i: int) -> tuple[int, None]:
            status, _ = await client.get(f"/v1/items/{ids[i % len(ids)]}/similar?k=10")
            return status, None

        async def tick(t0: float) -> None:
            self.t0 = t0

        day = 24 * 3600.0
        self.results, _ = run_loop(
            open_loop(by_id, self.rate, day, tick, url=self.url, stop=self.stop)
        )

    def __enter__(self) -> SteadyLoad:
        self.thread.start()
        time.sleep(3)  # past the generator's warm-up
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=120)

    def window(self, start: float, end: float) -> dict[str, Any]:
        """By-id figures of the requests due between two ``time.perf_counter()`` readings."""
        rows = [r for r in self.results if start <= self.t0 + r[0] <= end]
        ms = [r[1] * 1000 for r in rows]
        return {
            "requests": len(rows),
            "failed": sum(1 for r in rows if r[2] != 200),
            "p50_ms": round(pct(ms, 50), 2) if ms else None,
            "p99_ms": round(pct(ms, 99), 2) if ms else None,
        }


class Served:
    """Watches the service's applied version (``/v1/version``, every 0.25 s) and checks
    pending items only when it moves: a landed photo can only become served, or a removed one
    gone, with a new embeddings or bundle version, and checking every item every poll would
    be load of its own."""

    def __init__(self, url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=30)
        self.seen: tuple | None = None

    def moved(self) -> bool:
        v = self.client.get("/v1/version").json()
        now = (v.get("bundle_version"), v.get("embeddings_version"))
        moved, self.seen = now != self.seen, now
        return moved

    def served(self, item: str, photo: bytes) -> bool:
        c = self.client
        if c.get(f"/v1/items/{item}/similar", params={"k": 1}).status_code != 200:
            return False
        r = c.post("/v1/similar", files={"photo": ("p.png", photo, "image/png")})
        return r.status_code == 200 and r.json()["items"][0]["item_id"] == item

    def gone(self, item: str) -> bool:
        return self.client.get(f"/v1/items/{item}").status_code == 404


def watch(
    served: Served, check: Any, started: dict[str, float], timeout: float, more: Any = None
) -> dict[str, float]:
    """Seconds from each item's start (``time.perf_counter()``) until ``check(item)`` held.
    ``more()``, when given, is called every poll, may add items to ``started`` and returns
    True while more are to come."""
    done: dict[str, float] = {}
    while True:
        coming = more() if more is not None else False
        if served.moved():
            for item in [i for i in started if i not in done]:
                if check(item):
                    done[item] = time.perf_counter() - started[item]
        pending = [i for i in started if i not in done]
        if not pending and not coming:
            return done
        if pending and time.perf_counter() - min(started[i] for i in pending) > timeout:
            raise SystemExit(f"not done after {timeout:.0f} s: {pending[:5]}")
        time.sleep(0.25)


def summary(seconds: dict[str, float], bytes_written: int) -> dict[str, Any]:
    values = sorted(seconds.values())
    return {
        "photos": len(values),
        "p50_seconds": round(pct(values, 50), 1),
        "p95_seconds": round(pct(values, 95), 1),
        "max_seconds": round(values[-1], 1),
        "bytes_written": bytes_written,
    }


class Lander:
    """Lands turned Fashion-MNIST test photos (unlike any catalogue photo) in the landing
    store, from ``first`` on, remembering where each went and its bytes."""

    def __init__(self, settings: Any, first: int) -> None:
        self.settings, self.next = settings, first
        self.landed: dict[str, str] = {}
        self.photos: dict[str, bytes] = {}

    def land(self, count: int) -> list[str]:
        from bench.photos import land_fashion_mnist_photos
        from lookalike import storage

        s = self.settings
        new = land_fashion_mnist_photos(
            s.fashion_mnist_dir, s.landing_uri, range(self.next, self.next + count), turn=True
        )
        self.next += count
        self.landed |= new
        self.photos |= {i: storage.read_bytes(u) for i, u in new.items()}
        return list(new)


def at_once(served: Served, lander: Lander, count: int, timeout: float) -> dict[str, float]:
    """``count`` photos landed together: seconds until each is served."""
    t0 = time.perf_counter()
    items = lander.land(count)
    check = lambda i: served.served(i, lander.photos[i])  # noqa: E731
    return watch(served, check, dict.fromkeys(items, t0), timeout)


def removed(served: Served, lander: Lander, count: int, timeout: float) -> dict[str, float]:
    """``count`` landed photos removed: seconds until each item is gone."""
    from lookalike import storage

    victims = sorted(lander.landed)[:count]
    t0 = time.perf_counter()
    for item in victims:
        storage.remove_file(lander.landed.pop(item))
    return watch(served, served.gone, dict.fromkeys(victims, t0), timeout)


def sustained(
    served: Served, lander: Lander, every: float, count: int, timeout: float
) -> dict[str, float]:
    """One photo every ``every`` seconds, ``count`` of them: seconds until each is served."""
    started: dict[str, float] = {}
    due = time.perf_counter()

    def more() -> bool:
        nonlocal due
        if len(started) < count and time.perf_counter() >= due:
            started[lander.land(1)[0]] = time.perf_counter()
            due += every
        return len(started) < count

    return watch(served, lambda i: served.served(i, lander.photos[i]), started, timeout, more)


def service_rss(settings: Any) -> int | None:
    """Resident bytes of the service `make demo` started (its PID file), if running."""
    import psutil

    pid_file = Path(settings.home) / "run" / "service.pid"
    try:
        return int(psutil.Process(int(pid_file.read_text())).memory_info().rss)
    except (OSError, ValueError, psutil.Error):
        return None


def run_case(name: str, args: Any, settings: Any, served: Served, lander: Lander) -> dict:
    """One case's landed-to-served (or removed-to-gone) seconds and bytes written."""
    before = store_bytes(settings)
    if name == "delete_ten":
        seconds = removed(served, lander, 10, args.timeout)
    elif name == "sustained":
        count = round(args.sustained_minutes * 60 / args.every)
        seconds = sustained(served, lander, args.every, count, args.timeout)
    else:
        count = {"one": 1, "ten": 10, "hundred": 100}[name]
        seconds = at_once(served, lander, count, args.timeout)
    return summary(seconds, store_bytes(settings) - before)


def warm_up(settings: Any, served: Served, lander: Lander, timeout: float) -> None:
    """The fresh DAG's first run has no ingested listing to compare with and ingests the
    whole store with Spark (then records it). A stack that never ran it (a new `make demo`)
    gets one unmeasured photo first, so the cases measure the steady state."""
    from lookalike.catalog import landing

    if landing.read_files(settings.state_uri, landing.INGESTED) is not None:
        return
    seconds = at_once(served, lander, 1, timeout)
    print(f"[bench] warm-up (first run of the fresh DAG, by Spark): {seconds}", flush=True)


def run_stack(args: Any) -> None:
    """The landed-to-served cases on the running stack under a steady by-id load, merged into
    the results file."""
    import httpx

    from lookalike.config import get_settings

    settings = get_settings()
    url = settings.serve_url or "http://127.0.0.1:8000"
    pages = [
        httpx.get(f"{url}/v1/items", params={"limit": 200, "seed": seed}, timeout=30).json()
        for seed in range(5)
    ]
    ids = sorted({i["item_id"] for page in pages for i in page["items"]})
    served, lander = Served(url), Lander(settings, args.first)
    cases: dict[str, Any] = {}
    rss: dict[str, int | None] = {}
    windows: dict[str, tuple[float, float]] = {}
    warm_up(settings, served, lander, args.timeout)
    with SteadyLoad(url, ids, args.rate) as load:
        for name in args.cases.split(","):
            if name == "sustained":
                rss["start"] = service_rss(settings)
            t = time.perf_counter()
            cases[name] = run_case(name, args, settings, served, lander)
            windows[name] = (t, time.perf_counter())
            if name == "sustained":
                rss["end"] = service_rss(settings)
            print(f"[bench] {name}: {cases[name]}", flush=True)
    for name, (start, end) in windows.items():  # the load's figures exist once it stopped
        cases[name]["serving"] = load.window(start, end)
    whole = load.window(0.0, float("inf"))
    growth = rss["end"] / rss["start"] - 1 if rss.get("start") and rss.get("end") else None
    out = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    out["cases"] = out.get("cases", {}) | cases  # a rerun of some cases keeps the others
    if "sustained" not in cases:  # the run's serving figures come with the whole set
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps({"cases": cases}, indent=2))
        return
    out["serving"] = {
        "rate": args.rate,
        "requests": whole["requests"],
        "p99_ms": whole["p99_ms"],
        "failed": whole["failed"],
        "rss_start_bytes": rss.get("start"),
        "rss_end_bytes": rss.get("end"),
        "rss_growth": round(growth, 4) if growth is not None else None,
    }
    out["stack"] = {
        "served_items": pages[0]["total"],
        "command": f"python -m bench.freshness --stack --cases {args.cases}",
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"cases": cases, "serving": out["serving"]}, indent=2))


def served_rows(settings: Any) -> tuple[np.ndarray, pa.Table, dict[str, Any], Path]:
    """(vectors, items, manifest, folder) of the index version the service serves."""
    from lookalike.index.scann_index import load_rows, read_manifest
    from lookalike.index.versions import find_version, served_name

    name = served_name(settings)
    if name is None:
        raise SystemExit("no bundle is served in LOOKALIKE_HOME: run `make demo` first")
    folder = find_version(settings, name)
    vectors, items = load_rows(folder)
    return vectors, items, read_manifest(folder), folder


def recommender(vectors: np.ndarray, items: pa.Table, manifest: dict[str, Any]) -> Any:
    """A Recommender over ``vectors`` built as the product builds (encoder never called)."""
    from lookalike.index import scann_index as sx
    from lookalike.similarity.bundle import Recommender

    params = sx.IndexParams(**manifest["params"]) if manifest.get("params") else None
    params = params or sx.IndexParams.for_size(*vectors.shape)
    searcher = sx.build_searcher(vectors, items.column("item_id").to_pylist(), params)
    snap = dict(manifest) | {"embeddings_version": 0}
    return Recommender(lambda x: vectors[:1], searcher, vectors, items, snap)


def recall(rec: Any, all_vectors: np.ndarray, all_ids: list[str], queries: int) -> dict:
    """recall@10 of ``rec``'s live searcher against exact search over every item."""
    from lookalike.index import scann_index as sx

    probe = sx.RecallProbe.sample(all_vectors, k=10, sample=queries, seed=7)
    r = sx.measure_recall(rec.searcher, all_vectors, all_ids, tuning=rec.tuning, probe=probe)
    return {"recall_at_10": round(r.with_ties, 4), "recall_at_10_strict": round(r.strict, 4)}


def upsert_in_place(rec: Any, ids: list[str], vectors: np.ndarray, items: pa.Table) -> list:
    """Apply ``ids`` in steps of STEP as the feed would; seconds per step."""
    from lookalike.similarity.feed import FeedChanges

    cats = dict(
        zip(items.column("item_id").to_pylist(), items.column("category").to_pylist(), strict=True)
    )
    names = dict(
        zip(
            items.column("item_id").to_pylist(),
            items.column("category_name").to_pylist(),
            strict=True,
        )
    )
    seconds = []
    version = rec.embeddings_version
    for start in range(0, len(ids), STEP):
        chunk = ids[start : start + STEP]
        facts = {i: (int(cats[i]), str(names[i])) for i in chunk}
        t = time.perf_counter()
        rec.apply(FeedChanges(version, version + 1, chunk, vectors[start : start + STEP]), facts)
        seconds.append(time.perf_counter() - t)
        version += 1
    return seconds


def recall_section(vectors: np.ndarray, items: pa.Table, manifest: dict, args: Any) -> dict:
    ids = items.column("item_id").to_pylist()
    rng = np.random.default_rng(0)
    held = np.sort(rng.choice(len(ids), size=int(len(ids) * args.hold_out), replace=False))
    keep = np.setdiff1d(np.arange(len(ids)), held)
    t = time.perf_counter()
    rec = recommender(vectors[keep], items.take(pa.array(keep)), manifest)
    snapshot_build = time.perf_counter() - t
    steps = upsert_in_place(rec, [ids[j] for j in held], vectors[held], items)
    after = recall(rec, vectors, ids, args.queries)
    t = time.perf_counter()
    full = recommender(vectors, items, manifest)
    full_build = time.perf_counter() - t
    rebuilt = recall(full, vectors, ids, args.queries)
    return {
        "items": len(ids),
        "upserted": len(held),
        "after_upserts": after,
        "full_rebuild": rebuilt,
        "seconds_per_100": {"p50": round(float(np.median(steps)), 4), "max": round(max(steps), 4)},
        "snapshot_build_seconds": round(snapshot_build, 2),
        "full_build_seconds": round(full_build, 2),
        "_rec": full,
    }


def search_latency(rec: Any, seconds: float, writer: bool) -> dict:
    """One-query searches on two threads for ``seconds`` (with a writer applying 100
    upserts every 0.5 s when ``writer``); latency percentiles in ms."""
    from lookalike.similarity.feed import FeedChanges

    stop = threading.Event()
    lat: list[float] = []
    ids = rec.item_ids[:5000]
    rng = np.random.default_rng(1)

    def reader(seed: int) -> None:
        r = np.random.default_rng(seed)
        while not stop.is_set():
            item = ids[int(r.integers(len(ids)))]
            t = time.perf_counter()
            rec.similar_to_items([item], 10)
            lat.append(time.perf_counter() - t)

    def write() -> None:
        n = 0
        while not stop.wait(0.5):
            new = [f"bench-{n}-{j}" for j in range(STEP)]
            v = rec.vectors[rng.integers(len(ids), size=STEP)] + rng.normal(
                0, 0.01, (STEP, rec.vectors.shape[1])
            )
            v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
            version = rec.embeddings_version
            rec.apply(FeedChanges(version, version + 1, new, v), {i: (0, "bench") for i in new})
            n += 1

    threads = [threading.Thread(target=reader, args=(s,)) for s in (2, 3)]
    if writer:
        threads.append(threading.Thread(target=write))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    ms = [x * 1000 for x in lat]
    return {"searches": len(ms), "p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3)}


def commit_bytes(settings: Any) -> dict:
    """Bytes one commit adds to a copy of ``embeddings``: a new photo, then a replaced one."""
    from lookalike.catalog.table import delta_table
    from lookalike.similarity.embeddings import merge_embeddings, read_embeddings, staged_rows

    src = Path(settings.embeddings_uri)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "embeddings"
        shutil.copytree(src, copy)
        dt = delta_table(str(copy))
        enc = _encoder_of(dt)
        ids, vecs, _ = read_embeddings(str(copy), enc.name, enc.version)
        for case, item, h in (("new_photo", "bench-new", "x"), ("replaced_photo", ids[0], "y")):
            before = set(_files(copy))
            rows = staged_rows(enc, 0, upserts=([item], [h], vecs[:1]))
            merge_embeddings(str(copy), rows, commit_metadata={})
            added = [copy / f for f in set(_files(copy)) - before]
            out[case] = sum(p.stat().st_size for p in added)
    return out


def _files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


def _encoder_of(dt: Any) -> Any:
    """The encoder of the table's first row (name, version, dimension)."""
    from types import SimpleNamespace

    batch = next(
        dt.to_pyarrow_dataset().to_batches(columns=["encoder_name", "encoder_version", "embedding"])
    )
    row = batch.slice(0, 1).to_pylist()[0]
    return SimpleNamespace(
        name=str(row["encoder_name"]),
        version=str(row["encoder_version"]),
        embedding_size=len(row["embedding"]),
    )


def main() -> None:
    from lookalike.config import get_settings

    args = parse_args()
    if args.stack:
        run_stack(args)
        return
    settings = get_settings()
    vectors, items, manifest, folder = served_rows(settings)
    print(f"[bench] {len(vectors)} items x {vectors.shape[1]} from {folder.name}", flush=True)
    section = recall_section(vectors, items, manifest, args)
    rec = section.pop("_rec")
    print(f"[bench] recall {section}", flush=True)
    alone = search_latency(rec, args.seconds, writer=False)
    during = search_latency(rec, args.seconds, writer=True)
    snapshot_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    commits = commit_bytes(settings)
    out = {
        "dim": int(vectors.shape[1]),
        "source": f"served index {folder.name}",
        "recall": section,
        "recall_after_upserts": section["after_upserts"]["recall_at_10"],
        "search_during_updates": {
            "alone": alone,
            "with_writer": during,
            "p99_ratio": round(during["p99_ms"] / alone["p99_ms"], 2),
        },
        "bytes": {
            "snapshot": snapshot_bytes,
            **commits,
            "new_photo_share_of_snapshot": round(commits["new_photo"] / snapshot_bytes, 5),
            "replaced_photo_share_of_snapshot": round(
                commits["replaced_photo"] / snapshot_bytes, 5
            ),
        },
        "targets": {
            "recall_after_upserts_0_98": section["after_upserts"]["recall_at_10"] >= 0.98,
            "one_photo_bytes_1_percent": commits["new_photo"] <= 0.01 * snapshot_bytes,
        },
        "command": "python -m bench.freshness",
        "date": time.strftime("%Y-%m-%d"),
    }
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    out |= {k: previous[k] for k in ("cases", "stack") if k in previous}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
