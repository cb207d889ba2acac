"""Benchmark: the nightly full build at a million items, through `lookalike index build`.

    .venv/bin/python -m bench.million_build [--items 1000000] [--seed 0] [--keep-home DIR]

Issue 46, part 5. A catalogue of ``items`` real photos: Fashion-MNIST's 70,000 as they are,
then seeded augmented copies of the training photos (``bench.million.augment``, labels
kept) up to ``items``, written as the two IDX files of a Fashion-MNIST folder. In a home of
its own (a temp dir, removed after, unless --keep-home), with a copy of the encoder the
production bundle serves as its champion, it runs the commands a deployment runs, each in
its own process:
1. `lookalike ingest fashion-mnist --json` (Spark: decode, validate, one MERGE);
2. `lookalike index build --json` (Spark embeds every item into the `embeddings` table;
   then the build reads the vectors back from that Delta table, builds ScaNN, checks recall
   and writes the version).
Reports each command's wall seconds and the build's own step timings (embed, read, build,
check_and_write), the index's recall and size. Writes bench/results/index-build-1m.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.index import REPO, progress
from bench.million import ITEMS


def write_idx(path: Path, array: np.ndarray) -> None:
    """An unsigned-byte IDX file (gzip level 1: the reader decompresses a chunk's prefix)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        f.write(np.ascontiguousarray(array, np.uint8).tobytes())


def million_photos(data_dir: Path, items: int, seed: int, out_dir: Path) -> dict[str, Any]:
    """``out_dir`` as a Fashion-MNIST folder of ``items`` photos: the test split as it is,
    the training split plus augmented copies of it (labels kept) in the training files."""
    from bench.million import augment
    from lookalike.catalog.idx import read_idx
    from lookalike.catalog.sources import FASHION_MNIST_FILES, fashion_mnist_files

    files = fashion_mnist_files(data_dir)
    train, train_labels = (read_idx(p) for p in files["train"])
    test, test_labels = (read_idx(p) for p in files["test"])
    rng = np.random.default_rng(seed)
    photos, labels, total = [train], [train_labels], len(train) + len(test)
    while total < items:
        pick = rng.choice(len(train), min(len(train), items - total), replace=False)
        photos.append(augment(train[pick], rng))
        labels.append(train_labels[pick])
        total += len(pick)
    out_dir.mkdir(parents=True, exist_ok=True)
    (images, names) = FASHION_MNIST_FILES["train"]
    write_idx(out_dir / images, np.concatenate(photos))
    write_idx(out_dir / names, np.concatenate(labels))
    (images, names) = FASHION_MNIST_FILES["test"]
    write_idx(out_dir / images, test)
    write_idx(out_dir / names, test_labels)
    return {"items": total, "augmented": total - len(train) - len(test), "seed": seed}


def timed_command(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """A `lookalike` command in its own process: its JSON result and wall seconds."""
    lookalike = str(Path(sys.executable).parent / "lookalike")
    progress(f"running lookalike {' '.join(args)}")
    t = time.monotonic()
    done = subprocess.run([lookalike, *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout), round(time.monotonic() - t, 1)


def run(items: int, seed: int, home: Path) -> dict[str, Any]:
    """Photos, home, encoder, then ingest and a full index build, each command timed."""
    from bench.million import register_encoder_copy, served_encoder_dir
    from bench.synthetic import use_home
    from lookalike.config import get_settings
    from lookalike.registry.aliases import CHAMPION

    main_settings = get_settings()
    model_dir = served_encoder_dir(main_settings)
    t = time.monotonic()
    data = million_photos(main_settings.fashion_mnist_dir, items, seed, home / "fashion-mnist")
    data["write_seconds"] = round(time.monotonic() - t, 1)
    progress(f"photos: {data}")
    os.environ["LOOKALIKE_FASHION_MNIST_DIR"] = str(home / "fashion-mnist")
    settings = use_home(home / "home")
    encoder = register_encoder_copy(settings, model_dir, alias=CHAMPION)
    env = dict(os.environ)
    ingest, ingest_seconds = timed_command(["ingest", "fashion-mnist", "--json"], env)
    build, build_seconds = timed_command(["index", "build", "--json"], env)
    return {
        "benchmark": "index-build-1m",
        "command": "python -m bench.million_build " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "photos": data,
        "encoder": f"{encoder.name}/{encoder.version} (copy of the served encoder)",
        "ingest": {"seconds": ingest_seconds, "summary": ingest},
        "index_build": {
            "seconds": build_seconds,
            "timings": build.get("timings"),
            "size": build.get("size"),
            "recall_at_10": build.get("recall_at_10"),
            "recall_at_10_strict": build.get("recall_at_10_strict"),
            "index_version": build.get("index_version"),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-home", type=Path, help="build here and keep it (default: temp)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/index-build-1m.json")
    args = parser.parse_args()
    home = args.keep_home or Path(tempfile.mkdtemp(prefix="lookalike-bench-build-"))
    try:
        out = run(args.items, args.seed, home)
    finally:
        if args.keep_home is None:
            shutil.rmtree(home, ignore_errors=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["index_build"], indent=2))


if __name__ == "__main__":
    main()
