"""New product photos for the refresh path: Fashion-MNIST test images landed as files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lookalike.catalog.idx import read_idx
from lookalike.catalog.sources import FASHION_MNIST_LABELS, fashion_mnist_files, folder_item_id
from lookalike.images import encode_pixels


def land_fashion_mnist_photos(
    data_dir: Path, landing: Path, indexes: Iterable[int], *, mirror: bool = False
) -> dict[str, Path]:
    """Fashion-MNIST ``test`` photos written as new products into a landing folder (one folder
    per category name), to exercise the refresh path in tests and benchmarks. ``mirror``
    flips them left-right so no catalogue item has the same pixels. Returns item id -> file."""
    images, labels = fashion_mnist_files(data_dir)["test"]
    landed = {}
    for i in indexes:
        pixels = read_idx(images, i, 1)[0]
        rel = f"{FASHION_MNIST_LABELS[int(read_idx(labels, i, 1)[0])]}/new photo {i:05d}.png"
        path = landing / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_pixels(pixels[:, ::-1].copy() if mirror else pixels).png)
        landed[folder_item_id(rel)] = path
    return landed
