"""Photos read on demand from the catalogue table: right bytes, bounded memory."""

from __future__ import annotations

import random

import pyarrow as pa
from deltalake import WriterProperties, write_deltalake

from lookalike.catalog.photos import CatalogPhotos


def _table(path, n: int = 1000, size: int = 1000) -> dict[str, bytes]:
    photos = {f"item-{i:04d}": bytes([i % 251]) * size for i in range(n)}
    write_deltalake(
        str(path),
        pa.table({"item_id": list(photos), "image": list(photos.values())}),
        writer_properties=WriterProperties(max_row_group_size=100),
    )
    return photos


def test_every_photo_is_found_while_the_cache_stays_within_its_bound(tmp_path):
    photos = _table(tmp_path / "catalog")
    store = CatalogPhotos(str(tmp_path / "catalog"), 0, max_bytes=250_000)
    assert len(store) == 1000
    order = list(photos)
    random.Random(0).shuffle(order)
    for item in order:
        assert store.get(item) == photos[item]
        assert store.cached_bytes <= 250_000  # 2 row groups of 100 KB, never the table
    assert store.get("not-an-item") is None


def test_only_the_wanted_items_are_served(tmp_path):
    photos = _table(tmp_path / "catalog", n=300)
    store = CatalogPhotos(str(tmp_path / "catalog"), 0, {"item-0007", "item-0299"})
    assert len(store) == 2 and "item-0007" in store and "item-0008" not in store
    assert store.get("item-0299") == photos["item-0299"]
    assert store.get("item-0008") is None


def test_no_table_means_no_photos(tmp_path):
    assert len(CatalogPhotos(str(tmp_path / "nothing"), 0)) == 0
