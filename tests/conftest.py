"""Shared fixtures: one Spark session per test session, a fresh LOOKALIKE_HOME per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: A training configuration that runs in seconds (registry, index and service tests).
TINY_TRAIN = {
    "backbone": "seed_cnn",
    "epochs": 1,
    "steps_per_epoch": 20,
    "examples_per_class": 8,
    "augment": False,
}


def pytest_configure(config: pytest.Config) -> None:
    # Nothing a test runs may write into the developer's real home.
    os.environ["LOOKALIKE_HOME"] = tempfile.mkdtemp(prefix="lookalike-test-home-")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from lookalike.config import get_settings

    get_settings.cache_clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    # The session-wide home made above; tests' own homes are pytest tmp_paths.
    home = os.environ.get("LOOKALIKE_HOME", "")
    if Path(home).name.startswith("lookalike-test-home-"):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def spark():
    from lookalike.config import Settings
    from lookalike.spark import spark_session

    session = spark_session(
        "lookalike-tests", Settings(spark_driver_memory="1g", spark_shuffle_partitions=4)
    )
    yield session
    session.stop()


@pytest.fixture
def settings(tmp_path: Path):
    from lookalike.config import Settings

    return Settings(home=tmp_path / "home", spark_shuffle_partitions=4)


@pytest.fixture(scope="session")
def small_catalog(spark, tmp_path_factory):
    """Settings whose home holds a Fashion-MNIST slice (600 train + 600 test), shared by the
    model tests (they only read the catalogue; MLflow runs accumulate in the same store)."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings

    settings = Settings(home=tmp_path_factory.mktemp("model-home"), spark_shuffle_partitions=4)
    ingest_fashion_mnist(spark, settings=settings, limit=600)
    return settings


def write_photo(path: Path, seed: int, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Path:
    """A small random product photo (format from the suffix)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


@pytest.fixture
def photo_folder(tmp_path: Path) -> Iterator[Path]:
    """36 good photos in 3 category folders, plus a corrupt, an empty and a non-image file."""
    root = tmp_path / "photos"
    for c, cat in enumerate(("Shoes", "Hand bags", "Hats")):
        for i in range(12):
            suffix = ".jpg" if i % 2 else ".png"
            write_photo(root / cat / f"item {i}{suffix}", seed=100 * c + i)
    good = (root / "Shoes" / "item 0.png").read_bytes()
    (root / "Shoes" / "corrupt.png").write_bytes(good[: len(good) // 2])
    (root / "Hats" / "empty.jpg").write_bytes(b"")
    (root / "Hats" / "readme.txt").write_text("not a photo")
    yield root


#: A shopper-model configuration that trains in seconds.
TINY_SHOPPER = {"factors": 8, "epochs": 5, "batch_size": 512, "learning_rate": 0.01}


def make_shopper_model(settings, spark=None, *, users: int = 200, events: int = 8_000, **train):
    """Simulated shoppers over the home's catalogue -> interactions table -> a trained and
    registered shopper model (no ALS baseline unless ``spark`` is given) -> the gate."""
    import pyarrow.parquet as pq

    from lookalike.shopper.interactions import ingest_file
    from lookalike.shopper.items import load_item_space
    from lookalike.shopper.model import MFConfig
    from lookalike.shopper.pipeline import train_shopper
    from lookalike.shopper.registry import promote
    from lookalike.shopper.simulator import SimConfig, simulate

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
