"""Constants and builders that tests share (imported, unlike conftest.py's fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: A training configuration that runs in seconds (registry, index and service tests).
TINY_TRAIN = {
    "backbone": "seed_cnn",
    "epochs": 1,
    "steps_per_epoch": 20,
    "examples_per_class": 8,
    "augment": False,
}


def write_photo(path: Path, seed: int, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Path:
    """A small random product photo (format from the suffix)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


#: A shopper-model configuration that trains in seconds.
TINY_SHOPPER = {"factors": 8, "epochs": 5, "batch_size": 512, "learning_rate": 0.01}


def make_shopper_model(settings, spark=None, *, users: int = 200, events: int = 8_000, **train):
    """Simulated shoppers over the home's catalogue -> interactions table -> a trained and
    registered shopper model (no ALS baseline unless ``spark`` is given) -> the gate."""
    import pyarrow.parquet as pq

    from lookalike.shopper.interactions import ingest_file
    from lookalike.shopper.items import load_item_space
    from lookalike.shopper.model import MFConfig
    from lookalike.shopper.promotion import promote
    from lookalike.shopper.simulator import SimConfig, simulate
    from lookalike.shopper.training import train_shopper

    space = load_item_space(settings)
    cfg = SimConfig(users=users, events=events, seed=5)
    table = simulate(cfg, space.item_ids, space.categories, space.vectors)
    path = settings.home / "simulated.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    ingest = ingest_file(settings, path, source="simulator")
    result = train_shopper(
        settings,
        MFConfig(**(TINY_SHOPPER | train)),
        baselines=spark is not None,
        spark=spark,
    )
    return {"ingest": ingest, "train": result, "promote": promote(settings)}
