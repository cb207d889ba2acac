"""The million-vector set's pieces that need no encoder: augmentations and distinct rows."""

from __future__ import annotations

import numpy as np

from bench.million import augment, distinct_rows


def test_augmentations_are_seeded_and_change_every_photo() -> None:
    photos = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    a = augment(photos, np.random.default_rng(1))
    b = augment(photos, np.random.default_rng(1))
    assert a.shape == photos.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)  # the same seed, the same copies
    assert all(not np.array_equal(a[i], photos[i]) for i in range(len(photos)))
    assert not np.array_equal(a, augment(photos, np.random.default_rng(2)))


def test_distinct_rows_drops_repeats_across_calls() -> None:
    seen: set[bytes] = set()
    x = np.eye(3, dtype=np.float32)
    assert len(distinct_rows(np.vstack([x, x[:1]]), seen)) == 3
    assert len(distinct_rows(np.vstack([x[1:], 2 * x[:1]]), seen)) == 1


def test_items_table_keeps_row_order_and_the_index_schema() -> None:
    from bench.million import items_table, million_id
    from lookalike.similarity.index import ITEMS_SCHEMA

    t = items_table(12)
    assert t.schema == ITEMS_SCHEMA
    ids = t.column("item_id").to_pylist()
    assert ids == sorted(ids) == [million_id(j) for j in range(12)]


def serving_result(rss: int, by_id_p99: float, upload_p99: float, failed: int) -> dict:
    run = {"failed": 0, "requests_per_second": 1000.0}
    return {
        "rss_bytes": rss,
        "vectors_bytes": 2**30,
        "by_id_open_loop": run | {"p99_ms": by_id_p99},
        "upload": run | {"requests_per_second": 50.0, "p99_ms": upload_p99},
        "swap": {
            "failed": failed,
            "first_response_from_new_version_s": 40.0,
            "during_swap": {"p99_ms": 900.0},
        },
    }


def test_million_serving_targets_and_headline() -> None:
    from argparse import Namespace

    from bench.serving import million_headline, million_targets

    args = Namespace(by_id_rate=1000.0, upload_rate=50.0)
    ok = serving_result(3 * 2**30, 12.0, 40.0, 0)
    assert all(million_targets(ok, args).values())
    bad = million_targets(serving_result(3 * 2**30 + 1, 21.0, 51.0, 1), args)
    assert not any(bad.values())  # 1.5 x 1 GiB + 1.5 GiB is the last byte allowed
    head = million_headline(ok)
    assert head["swap"] == {"failed": 0, "p99_ms": 900.0}
    assert head["by_id"]["p99_ms"] == 12.0 and head["upload"]["p99_ms"] == 40.0


def test_fastest_at_picks_per_variant_and_compares_libraries() -> None:
    from bench.million_variants import fastest_at

    rows = [
        {"method": "scann", "variant": "a", "recall_at_10": 0.995, "qps": 100.0},
        {"method": "scann", "variant": "a", "recall_at_10": 0.98, "qps": 900.0},
        {"method": "scann", "variant": "b", "recall_at_10": 0.991, "qps": 300.0},
        {"method": "hnswlib", "variant": "M16", "recall_at_10": 0.992, "qps": 200.0},
        {"method": "hnswlib", "variant": "pca", "recall_at_10": 0.9, "qps": 5000.0},
    ]
    s = fastest_at(rows)
    assert s["per_variant"]["scann/a"]["qps"] == 100.0
    assert s["per_variant"]["hnswlib/pca"] is None
    assert s["best"]["scann"]["variant"] == "b"
    assert s["scann_vs_hnswlib_qps"] == 1.5


def test_million_photos_writes_a_fashion_mnist_folder_of_that_many(tmp_path) -> None:
    from bench.million_build import million_photos, write_idx
    from lookalike.catalog.idx import read_idx
    from lookalike.catalog.sources import FASHION_MNIST_FILES, fashion_mnist_files

    rng = np.random.default_rng(0)
    source = tmp_path / "source"
    source.mkdir()
    for split, n in (("train", 30), ("test", 10)):
        images, labels = FASHION_MNIST_FILES[split]
        write_idx(source / images, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(source / labels, rng.integers(0, 10, n, dtype=np.uint8))
    out = million_photos(source, 100, 0, tmp_path / "out")
    assert out == {"items": 100, "augmented": 60, "seed": 0}
    files = fashion_mnist_files(tmp_path / "out")
    train, labels = (read_idx(p) for p in files["train"])
    assert train.shape == (90, 28, 28) and labels.shape == (90,)
    original = read_idx(source / FASHION_MNIST_FILES["train"][0])
    assert np.array_equal(train[:30], original)  # the originals first, then the copies
    assert np.array_equal(
        read_idx(files["test"][0]), read_idx(source / FASHION_MNIST_FILES["test"][0])
    )
