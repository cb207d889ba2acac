"""Per-batch source functions (what Spark executors run), called without Spark."""

import itertools

import pyarrow as pa
import pytest

from lookalike.catalog.ingest import assign_categories
from lookalike.catalog.sources import (
    FASHION_MNIST_LABELS,
    STAGED_SCHEMA,
    ImageLimits,
    check_id_prefix,
    fashion_mnist_batch,
    fashion_mnist_chunks,
    folder_batch,
    folder_item_id,
    hashed_split,
    walk_files,
)
from lookalike.images import decode_png
from tests.support.builders import FASHION_MNIST_DIR


def test_fashion_mnist_chunks_cover_each_split_exactly():
    chunks = fashion_mnist_chunks(FASHION_MNIST_DIR)
    for split, n in (("train", 60000), ("test", 10000)):
        spans = sorted((s, c) for sp, s, c in chunks if sp == split)
        assert spans[0][0] == 0 and sum(c for _, c in spans) == n
        assert all(a + ca == b for (a, ca), (b, _) in itertools.pairwise(spans))
    limited = fashion_mnist_chunks(FASHION_MNIST_DIR, limit=10)
    assert limited == [("train", 0, 10), ("test", 0, 10)]


def test_fashion_mnist_batch_has_stable_ids_and_named_categories():
    batch = fashion_mnist_batch(FASHION_MNIST_DIR, "train", 41, 3)
    assert batch.schema == STAGED_SCHEMA
    rows = batch.to_pylist()
    assert [r["item_id"] for r in rows] == ["fm-train-00041", "fm-train-00042", "fm-train-00043"]
    assert all(r["category_name"] in FASHION_MNIST_LABELS and r["reason"] is None for r in rows)
    assert decode_png(rows[0]["image"]).shape == (28, 28)
    assert (rows[0]["width"], rows[0]["height"], rows[0]["channels"]) == (28, 28, 1)


def test_folder_ids_and_splits_are_deterministic():
    assert folder_item_id("Hand bags/Red tote (2).JPG") == "Hand-bags-Red-tote-2"
    assert hashed_split("abc", 0.1) == hashed_split("abc", 0.1)
    splits = [hashed_split(f"item-{i}", 0.2) for i in range(2000)]
    assert 300 < splits.count("test") < 500


def _plan(paths, **cols) -> pa.RecordBatch:
    n = len(paths)
    data = {"path": paths} | {
        c: cols.get(c, [None] * n) for c in ("item_id", "category_name", "split", "reason")
    }
    return pa.RecordBatch.from_pydict(data, schema=pa.schema([(k, pa.string()) for k in data]))


def test_folder_batch_derives_metadata_and_rejects_with_reasons(photo_folder):
    paths = walk_files(str(photo_folder))
    assert len(paths) == 39
    out = folder_batch(
        _plan(paths),
        root=str(photo_folder),
        source="folder:photos",
        limits=ImageLimits(),
        test_fraction=0.25,
    ).to_pylist()
    good = [r for r in out if r["reason"] is None]
    rejected = {r["path"].rsplit("/", 1)[1]: r["reason"] for r in out if r["reason"]}
    assert len(good) == 36
    assert {r["category_name"] for r in good} == {"Shoes", "Hand bags", "Hats"}
    assert {r["split"] for r in good} == {"train", "test"}
    assert all(r["source"] == "folder:photos" and r["content_hash"] for r in good)
    assert rejected == {
        "corrupt.png": "corrupt image: image file is truncated",
        "empty.jpg": "empty file",
        "readme.txt": "not an image (unrecognised file content)",
    }


def test_folder_batch_uses_given_metadata_and_checks_it(photo_folder):
    shoe = str(photo_folder / "Shoes" / "item 0.png")
    out = folder_batch(
        _plan(
            [shoe, shoe, shoe, None],
            item_id=["sku-1", "bad id!", "sku-3", "sku-4"],
            category_name=["Sneakers", None, "Sneakers", "Hats"],
            split=["test", None, "validation", None],
            reason=[None, None, None, "file not found: /x.png"],
        ),
        root=str(photo_folder),
        source="s",
        limits=ImageLimits(),
        test_fraction=0.1,
    ).to_pylist()
    assert (out[0]["item_id"], out[0]["category_name"], out[0]["split"]) == (
        "sku-1",
        "Sneakers",
        "test",
    )
    assert out[0]["reason"] is None
    assert out[1]["reason"].startswith("invalid item_id 'bad id!'")
    assert out[2]["reason"] == "invalid split 'validation' (train or test)"
    assert out[3]["reason"] == "file not found: /x.png"


def test_copies_of_one_photo_share_a_split_whatever_their_ids(photo_folder):
    """Identical photos never straddle train and test: the split is hashed from the pixels."""
    shoe = str(photo_folder / "Shoes" / "item 0.png")
    hat = str(photo_folder / "Hats" / "item 0.png")
    ids = [f"sku-{i}" for i in range(40)]
    out = folder_batch(
        _plan([shoe] * 20 + [hat] * 20, item_id=ids, category_name=["c"] * 40),
        root=str(photo_folder),
        source="s",
        limits=ImageLimits(),
        test_fraction=0.5,
    ).to_pylist()
    assert len({r["split"] for r in out[:20]}) == 1 and len({r["split"] for r in out[20:]}) == 1
    assert {r["split"] for r in out} <= {"train", "test"}
    # by item id, 40 ids at a fraction of 0.5 would have landed on both sides
    assert len({hashed_split(i, 0.5) for i in ids[:20]}) == 2


def test_category_ids_are_stable_and_prefer_given_labels():
    fm = {n: i for i, n in enumerate(FASHION_MNIST_LABELS)}
    assert assign_categories({}, ["Bag", "Trouser"], fm) == {"Bag": 8, "Trouser": 1}
    existing = {"Bag": 8, "Shoes": 0}
    got = assign_categories(existing, ["Bag", "T-shirt/top", "Hats"], fm)
    assert got["Bag"] == 8 and got["Shoes"] == 0  # existing ids never move
    assert got["T-shirt/top"] == 9 and got["Hats"] == 10  # label 0 taken: next free ids


def test_id_prefix_goes_in_front_of_path_and_csv_ids(photo_folder):
    shoe = str(photo_folder / "Shoes" / "item 0.png")
    out = folder_batch(
        _plan([shoe, shoe, shoe], item_id=[None, "sku-1", "x" * 124]),
        root=str(photo_folder),
        source="conc",
        limits=ImageLimits(),
        test_fraction=0.25,
        id_prefix="conc-",
    ).to_pylist()
    assert [r["item_id"] for r in out[:2]] == ["conc-Shoes-item-0", "conc-sku-1"]
    assert out[0]["split"] == hashed_split(out[0]["content_hash"], 0.25)  # from the photo
    assert out[2]["reason"].startswith("invalid item_id 'conc-xxx")  # 129 characters


@pytest.mark.parametrize("prefix", ["", "-conc", "conc/", "new feed-", "x" * 129])
def test_bad_id_prefixes_are_refused(prefix):
    with pytest.raises(ValueError, match="invalid id prefix"):
        check_id_prefix(prefix)


def test_good_id_prefixes_pass():
    assert check_id_prefix("conc-") == "conc-" and check_id_prefix("B2.") == "B2."
