"""New product photos for the refresh path: Fashion-MNIST test images landed as files (the
pipeline benchmark's refreshes, and the tests through ``tests.support.photos``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lookalike import storage
from lookalike.catalog.idx import read_idx
from lookalike.catalog.sources import FASHION_MNIST_LABELS, fashion_mnist_files, folder_item_id
from lookalike.images import encode_pixels


def land_fashion_mnist_photos(
    data_dir: Path,
    landing: str | Path,
    indexes: Iterable[int],
    *,
    mirror: bool = False,
    turn: bool = False,
) -> dict[str, str]:
    """Fashion-MNIST ``test`` photos written as new products into a landing folder (local or
    on the store; one folder per category name), to exercise the refresh path in tests and
    benchmarks. ``mirror`` flips them left-right so no catalogue item has the same pixels
    (the default encoder averages a photo with its mirror: to it, they are the same photo);
    ``turn`` turns them a quarter, which no catalogue photo looks like to any encoder.
    Returns item id -> the photo's location."""
    images, labels = fashion_mnist_files(data_dir)["test"]
    landed = {}
    for i in indexes:
        pixels = read_idx(images, i, 1)[0]
        rel = f"{FASHION_MNIST_LABELS[int(read_idx(labels, i, 1)[0])]}/new photo {i:05d}.png"
        uri = storage.join(landing, rel)
        if mirror:
            pixels = pixels[:, ::-1]
        if turn:
            pixels = np.rot90(pixels)
        storage.write_bytes(uri, encode_pixels(np.ascontiguousarray(pixels)).png)
        landed[folder_item_id(rel)] = uri
    return landed
