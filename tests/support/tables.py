"""Rows for catalogue-table tests: one staged change of an item."""


def change(item_id: str, h: str = "h1", cat: str = "Bag", op: str = "upsert") -> dict:
    """A staged change row (``CHANGE_SCHEMA``) of ``item_id`` with content hash ``h``."""
    return {
        "item_id": item_id,
        "category": 8,
        "category_name": cat,
        "image": b"png",
        "width": 28,
        "height": 28,
        "channels": 1,
        "content_hash": h,
        "split": "train",
        "source": "test",
        "_op": op,
    }
