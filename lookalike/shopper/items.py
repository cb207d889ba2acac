"""The item space shopper models work in: catalogue ids, categories and a visual vector each.

Visual vectors come from the latest ScaNN index version (the similarity model's catalogue
embeddings) when there is one; before any encoder exists they are a fixed random projection
of 16x16 grayscale pixels, which still places look-alike products near each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lookalike.catalog.table import open_table
from lookalike.config import Settings


@dataclass(frozen=True)
class ItemSpace:
    """The catalogue's items as the shopper model sees them: ids, categories and unit visual
    vectors (from the latest index version when it covers every item, else raw pixels),
    row-aligned."""

    item_ids: list[str]
    categories: np.ndarray  # int32
    category_names: list[str]
    vectors: np.ndarray  # float32, unit rows
    source: str  # "index:<version>" or "pixels"

    def __len__(self) -> int:
        return len(self.item_ids)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def pixel_vectors(images: list[bytes], dim: int = 64, seed: int = 0) -> np.ndarray:
    """A fixed random projection of 16x16 grayscale pixels (centred), unit length."""
    from lookalike.images import to_model_input

    pixels = np.stack([to_model_input(png, 16, 1).reshape(-1) for png in images]).astype(np.float32)
    pixels -= pixels.mean(axis=0, keepdims=True)
    proj = np.random.default_rng(seed).standard_normal((pixels.shape[1], dim)).astype(np.float32)
    return _unit(pixels @ proj)


def load_item_space(settings: Settings, *, limit: int | None = None) -> ItemSpace:
    """The current catalogue's items (sorted by id), with visual vectors."""
    from lookalike.index import scann_index as sx
    from lookalike.index.versions import latest_version

    cols = ["item_id", "category", "category_name"]
    table = open_table(settings.catalog_uri).to_pyarrow_table(columns=cols)
    table = pa.table(
        {
            c: table.column(c).cast(t)
            for c, t in zip(cols, [pa.string(), pa.int32(), pa.string()], strict=True)
        }
    )
    table = table.sort_by("item_id")
    if limit is not None:
        table = table.slice(0, limit)
    ids = table.column("item_id").to_pylist()
    vectors: np.ndarray | None = None
    source = "pixels"
    latest = latest_version(settings)
    if latest is not None:
        vecs, rows = sx.load_rows(latest)
        row = {i: j for j, i in enumerate(rows.column("item_id").to_pylist())}
        hit = [row.get(i, -1) for i in ids]
        if all(h >= 0 for h in hit):
            vectors, source = _unit(vecs[hit]), f"index:{latest.name}"
    if vectors is None:
        images = open_table(settings.catalog_uri).to_pyarrow_table(columns=["item_id", "image"])
        by_id = dict(
            zip(
                images.column("item_id").to_pylist(),
                images.column("image").to_pylist(),
                strict=True,
            )
        )
        vectors = pixel_vectors([by_id[i] for i in ids])
    return ItemSpace(
        item_ids=ids,
        categories=np.asarray(table.column("category").to_pylist(), dtype=np.int32),
        category_names=table.column("category_name").to_pylist(),
        vectors=vectors,
        source=source,
    )
