"""IDX parsing against the real Fashion-MNIST files of the Debian package."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from lookalike.catalog.idx import IdxFormatError, idx_shape, read_idx
from lookalike.catalog.sources import FASHION_MNIST_LABELS
from tests.support.builders import FASHION_MNIST_DIR

TRAIN_IMAGES = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
TRAIN_LABELS = FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz"
TEST_IMAGES = FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz"


def test_real_files_have_the_documented_shapes():
    assert idx_shape(TRAIN_IMAGES) == (60000, 28, 28)
    assert idx_shape(TRAIN_LABELS) == (60000,)
    assert idx_shape(TEST_IMAGES) == (10000, 28, 28)


def test_labels_are_balanced_over_ten_classes():
    labels = read_idx(TRAIN_LABELS)
    assert labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [6000] * 10


def test_slices_equal_the_same_rows_of_a_full_read():
    full = read_idx(TEST_IMAGES)
    part = read_idx(TEST_IMAGES, start=9990, count=50)  # count clipped at the end
    assert part.shape == (10, 28, 28)
    np.testing.assert_array_equal(part, full[9990:])
    assert full.max() == 255 and full.min() == 0


def test_label_table_matches_the_package_readme():
    readme = Path("/usr/share/doc/dataset-fashion-mnist/README.md.gz")
    if not readme.exists():
        pytest.skip("package docs not installed")
    with gzip.open(readme, "rt") as f:
        text = f.read()
    for label, name in enumerate(FASHION_MNIST_LABELS):
        assert f"| {label} | {name} |" in text


def test_not_an_idx_file_is_refused(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        read_idx(bad)


def test_truncated_idx_file_is_refused(tmp_path):
    with gzip.open(TRAIN_LABELS) as f:
        raw = f.read()
    cut = tmp_path / "cut-labels-idx1-ubyte"
    cut.write_bytes(raw[:100])
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(cut)
