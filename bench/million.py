"""A million items of the product's own vectors: the served encoder over Fashion-MNIST photos
under seeded augmentations, cached between runs.

    .venv/bin/python -m bench.million [--items 1000000] [--seed 0]

The catalogue's photos (the 60,000 training photos and the test photos not held out) are
shifted, cropped and resized back, flipped and brightened, each copy under its own seeded
draw, and embedded by the encoder the production bundle serves, until there are ``items``
distinct vectors at the encoder's dimension. The queries are 1,000 held-out test photos
(never augmented into the set). The vectors are written once to
``<home>/cache/million/<encoder>-v<version>-<items>-seed<seed>.npz`` and read from there on
the next run (``bench.index --million``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

QUERIES = 1000
#: the set's size unless asked otherwise
ITEMS = 1_000_000


class Million(NamedTuple):
    """The set: ``vectors`` (items, dim) float32 unit rows, ``queries`` (1000, dim), where
    they came from (``source``, encoder, seed) and the cache file."""

    vectors: np.ndarray
    queries: np.ndarray
    meta: dict[str, Any]
    path: Path


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One seeded copy of each (n, h, w) uint8 photo: a shift of up to 3 pixels, a crop of
    80-100% of the side resized back, a horizontal flip (half of them) and a brightness factor
    in [0.7, 1.3]. Background stays black, as in Fashion-MNIST."""
    from PIL import Image

    n, h, w = images.shape
    out = np.empty_like(images)
    for i in range(n):
        img = images[i]
        side = round(h * rng.uniform(0.8, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(img[top : top + side, left : left + side])
        img = np.asarray(crop.resize((w, h), Image.BILINEAR))
        dy, dx = rng.integers(-3, 4, size=2)
        img = np.roll(img, (dy, dx), axis=(0, 1))
        if dy > 0:
            img[:dy] = 0
        elif dy < 0:
            img[dy:] = 0
        if dx > 0:
            img[:, :dx] = 0
        elif dx < 0:
            img[:, dx:] = 0
        if rng.random() < 0.5:
            img = img[:, ::-1]
        out[i] = np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
    return out


def source_photos(data_dir: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(photos the set is made of, the held-out query photos): 1,000 test photos drawn with
    ``seed`` are the queries; every other photo of both splits is a source."""
    from lookalike.catalog.idx import read_idx
    from lookalike.catalog.sources import fashion_mnist_files

    files = fashion_mnist_files(data_dir)
    train, test = read_idx(files["train"][0]), read_idx(files["test"][0])
    held = np.random.default_rng(seed).choice(len(test), QUERIES, replace=False)
    keep = np.ones(len(test), bool)
    keep[held] = False
    return np.concatenate([train, test[keep]]), test[np.sort(held)]


def distinct_rows(x: np.ndarray, seen: set[bytes]) -> np.ndarray:
    """The rows of ``x`` not seen before (by their bytes), adding them to ``seen``."""
    keep = []
    for i, row in enumerate(x):
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return x[keep]


def build(settings: Any, items: int, seed: int, batch: int = 8192) -> Million:
    """The set (from the cache when it was built before with the same encoder, size, seed)."""
    from lookalike.index.versions import read_manifest, served_name
    from lookalike.registry.encoders import embed_images, fetch_encoder, load_predict, model_dir

    served = served_name(settings)
    if served is None:
        raise SystemExit("no production bundle: run `make demo` first")
    encoder = fetch_encoder(settings, read_manifest(settings, served)["encoder"]["version"])
    name = f"{encoder.name}-v{encoder.version}-{items}-seed{seed}.npz"
    path = Path(settings.home) / "cache" / "million" / name
    if path.is_file():
        with np.load(path) as f:
            meta = json.loads(str(f["meta"]))
            return Million(f["vectors"], f["queries"], meta, path)
    predict = load_predict(model_dir(encoder))

    def embed(photos: np.ndarray) -> np.ndarray:
        return embed_images(
            predict, list(photos), input_size=encoder.input_size, channels=encoder.channels
        )

    photos, held = source_photos(Path(settings.fashion_mnist_dir), seed)
    t0 = time.perf_counter()
    parts, seen, total, rounds = [], set(), 0, 0
    rng = np.random.default_rng(seed)
    while total < items:
        order = rng.permutation(len(photos))
        for start in range(0, len(order), batch):
            chunk = photos[order[start : start + batch]]
            x = distinct_rows(embed(chunk if rounds == 0 else augment(chunk, rng)), seen)
            parts.append(x[: items - total])
            total += len(parts[-1])
            rate = total / (time.perf_counter() - t0)
            print(f"[million] {total}/{items} vectors, {rate:.0f}/s", file=sys.stderr, flush=True)
            if total >= items:
                break
        rounds += 1
    vectors = np.concatenate(parts)
    meta = {
        "source": "encoder over augmented Fashion-MNIST",
        "encoder": f"{encoder.name}/{encoder.version}",
        "items": items,
        "dim": int(vectors.shape[1]),
        "seed": seed,
        "queries": f"{QUERIES} held-out Fashion-MNIST test photos, unaugmented",
        "augmentations": "crop 80-100% resized back, shift <= 3 px, flip 1/2, brightness 0.7-1.3",
        "embed_seconds": round(time.perf_counter() - t0, 1),
    }
    queries = embed(held)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, vectors=vectors, queries=queries, meta=np.array(json.dumps(meta)))
    tmp.replace(path)  # whole or not at all
    return Million(vectors, queries, meta, path)


def million_id(row: int) -> str:
    """Zero-padded, so sorted ids are row order (the library keeps items sorted by id)."""
    return f"m-{row:07d}"


def items_table(n: int) -> Any:
    """The index's item rows for the set: ids in row order; one category, since the
    augmented copies' labels are not kept (no served route here filters by category)."""
    import pyarrow as pa

    from lookalike.similarity.index import ITEMS_SCHEMA

    columns = {
        "item_id": [million_id(j) for j in range(n)],
        "category": np.zeros(n, np.int32),
        "category_name": ["augmented-fashion-mnist"] * n,
        "content_hash": [""] * n,  # no stored photos: by-id and upload queries only
    }
    return pa.table(columns, schema=ITEMS_SCHEMA)


def served_encoder_dir(settings: Any) -> Path:
    """The local model directory of the encoder the production bundle serves: the one that
    embedded the set."""
    from lookalike.index.versions import read_manifest, served_name
    from lookalike.registry.encoders import fetch_encoder

    served = served_name(settings)
    if served is None:
        raise SystemExit("no production bundle: run `make demo` first")
    version = read_manifest(settings, served)["encoder"]["version"]
    return Path(fetch_encoder(settings, version).local_dir)


def register_encoder_copy(settings: Any, model_dir: Path, alias: str = "challenger") -> Any:
    """Log and register, in ``settings``' own registry, the Keras encoder and training
    config of the pyfunc model at ``model_dir`` (another home's): the service in a bench
    home embeds uploads with the very encoder that embedded the set."""
    import tensorflow as tf

    from bench.synthetic import register_encoder
    from lookalike.similarity.config import TrainConfig
    from lookalike.similarity.tfsim import import_tfsim

    import_tfsim()
    art = model_dir / "artifacts"
    cfg = TrainConfig.from_dict(json.loads((art / "train_config.json").read_text()))
    model = tf.keras.models.load_model(art / "encoder.keras", compile=False)
    return register_encoder(settings, model, cfg, "bench-million-encoder", alias)


def held_out_pngs(settings: Any, seed: int, count: int = 50) -> list[bytes]:
    """PNG bytes of the first ``count`` held-out query photos (the upload route's input)."""
    from lookalike.images import encode_pixels

    _, held = source_photos(Path(settings.fashion_mnist_dir), seed)
    return [encode_pixels(photo).png for photo in held[:count]]


def add_million_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--million [N]``: the set's size, ``ITEMS`` when given bare; 0 (absent) is off."""
    parser.add_argument("--million", type=int, nargs="?", const=ITEMS, default=0, help=help)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from lookalike.config import get_settings

    m = build(get_settings(), args.items, args.seed)
    print(json.dumps(m.meta | {"path": str(m.path)}, indent=2))


if __name__ == "__main__":
    main()
