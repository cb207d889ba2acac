"""Where catalogue rows come from: Fashion-MNIST IDX files and folders of product photos.

Each source becomes a Spark DataFrame of STAGED rows, decoded and validated on executors.
The per-batch work is in plain Arrow functions (``fashion_mnist_batch``, ``folder_batch``)
that unit tests call without Spark. A staged row either carries a normalised image or a
``reason`` it was rejected; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from lookalike import storage
from lookalike.catalog.idx import idx_shape, read_idx
from lookalike.images import ImageRejected, encode_pixels, normalise_image

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FASHION_MNIST_SOURCE = "fashion-mnist"
# The label table of the dataset's README (zalandoresearch/fashion-mnist, "Labels").
FASHION_MNIST_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLITS = ("train", "test")
ITEM_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

STAGED_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("category_name", pa.string()),
        ("image", pa.binary()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("channels", pa.int32()),
        ("content_hash", pa.string()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("path", pa.string()),
        ("reason", pa.string()),
    ]
)
STAGED_DDL = (
    "item_id string, category_name string, image binary, width int, height int, channels int, "
    "content_hash string, split string, source string, path string, reason string"
)


@dataclass(frozen=True)
class ImageLimits:
    """Normalisation limits, passed to executors as a small picklable value."""

    max_side: int = 512
    min_side: int = 8
    max_pixels: int = 40_000_000
    max_bytes: int = 20 * 1024 * 1024


def _staged(rows: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=STAGED_SCHEMA)


# ---------------------------------------------------------------- Fashion-MNIST --------------


def fashion_mnist_item_id(split: str, index: int) -> str:
    """Stable id: the record's position in the split's IDX file, e.g. ``fm-train-00042``."""
    return f"fm-{split}-{index:05d}"


def fashion_mnist_files(data_dir: Path) -> dict[str, tuple[Path, Path]]:
    """(images, labels) IDX files of each split under ``data_dir``; a missing one names the
    Debian package that ships them."""
    files = {s: (data_dir / i, data_dir / lbl) for s, (i, lbl) in FASHION_MNIST_FILES.items()}
    missing = [str(p) for pair in files.values() for p in pair if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files missing: {', '.join(missing)} "
            "(install the Debian package dataset-fashion-mnist, or set LOOKALIKE_FASHION_MNIST_DIR)"
        )
    return files


def fashion_mnist_chunks(
    data_dir: Path, limit: int | None = None, chunk_size: int = 2500
) -> list[tuple[str, int, int]]:
    """(split, start, count) work units covering each split (its first ``limit`` records)."""
    chunks = []
    for split, (images, labels) in fashion_mnist_files(data_dir).items():
        n = idx_shape(images)[0]
        if idx_shape(labels)[0] != n:
            raise ValueError(f"{images} and {labels} disagree on the number of records")
        n = n if limit is None else min(n, limit)
        chunks += [(split, s, min(chunk_size, n - s)) for s in range(0, n, chunk_size)]
    return chunks


def fashion_mnist_batch(data_dir: Path, split: str, start: int, count: int) -> pa.RecordBatch:
    """Staged rows for records ``[start, start+count)`` of one split."""
    images_path, labels_path = fashion_mnist_files(data_dir)[split]
    images = read_idx(images_path, start, count)
    labels = read_idx(labels_path, start, count)
    rows = []
    for offset, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        img = encode_pixels(pixels)
        rows.append(
            {
                "item_id": fashion_mnist_item_id(split, start + offset),
                "category_name": FASHION_MNIST_LABELS[int(label)],
                "image": img.png,
                "width": img.width,
                "height": img.height,
                "channels": img.channels,
                "content_hash": img.content_hash,
                "split": split,
                "source": FASHION_MNIST_SOURCE,
                "path": f"{images_path}#{start + offset}",
                "reason": None,
            }
        )
    return _staged(rows)


def fashion_mnist_frame(spark: SparkSession, data_dir: Path, limit: int | None = None) -> DataFrame:
    """Staged rows of the Fashion-MNIST IDX files (``limit`` per split), decoded on executors
    in chunks, so the driver never holds the images."""
    chunks = fashion_mnist_chunks(data_dir, limit)
    work = spark.createDataFrame(chunks, "split string, start int, count int").repartition(
        max(1, len(chunks)), "start", "split"
    )
    data_dir = Path(data_dir)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            for split, start, count in zip(
                *(b.column(i).to_pylist() for i in range(3)), strict=True
            ):
                yield fashion_mnist_batch(data_dir, split, start, count)

    return work.mapInArrow(run, STAGED_DDL)


# ---------------------------------------------------------------- photo folders --------------


def walk_files(top: str) -> list[str]:
    """Every file below ``top``, a local folder or an object-store prefix (hidden ones too:
    they are reported, not skipped), sorted."""
    return [e.uri for e in storage.listdir(top, recursive=True) if not e.is_dir]


def list_folder(spark: SparkSession, root: str) -> DataFrame:
    """All file locations below ``root`` as a DataFrame; sub-folders are listed on executors
    (through ``pyarrow.fs``, so a landing prefix on an object store works the same).

    Spark's binaryFile source is not used: it silently skips empty files, which must be
    reported as rejects instead.
    """
    entries = storage.listdir(root)
    top_files = [(e.uri,) for e in entries if not e.is_dir]
    subdirs = [e.uri for e in entries if e.is_dir]
    files = spark.createDataFrame(top_files, "path string")
    if subdirs:
        walked = spark.sparkContext.parallelize(subdirs, len(subdirs)).flatMap(walk_files)
        files = files.unionByName(spark.createDataFrame(walked.map(lambda p: (p,)), "path string"))
    return files


def folder_item_id(relpath: str) -> str:
    """Id from the path below the folder: ``Shoes/red sneaker.jpg`` -> ``Shoes-red-sneaker``."""
    stem = os.path.splitext(relpath)[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem.replace(os.sep, "-")).strip("-.") or "item"


def check_id_prefix(prefix: str) -> str:
    """A folder feed's id prefix must itself look like an item id, so every prefixed id does."""
    if not ITEM_ID_RE.match(prefix):
        raise ValueError(
            f"invalid id prefix {prefix!r} (letters, digits, '.', '_', '-'; "
            "starts with a letter or digit; max 128)"
        )
    return prefix


def hashed_split(key: str, test_fraction: float) -> str:
    """Deterministic hold-out: the same key always lands in the same split.

    Folder photos are keyed by their pixel hash, not their item id: catalogues list the same
    photo under many ids (colour variants, reused shots), and identical photos on both sides
    would score duplicate look-up instead of similarity (raw pixels find them trivially).
    """
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return "test" if bucket < test_fraction else "train"


def folder_batch(
    batch: pa.RecordBatch,
    *,
    root: str,
    source: str,
    limits: ImageLimits,
    test_fraction: float,
    id_prefix: str = "",
) -> pa.RecordBatch:
    """Read, validate and normalise the files of one batch of the folder's plan.

    Plan columns: ``path`` (local file path, null when a metadata row names no existing
    file), ``item_id``, ``category_name``, ``split``, ``reason`` (metadata problems found
    earlier), optionally ``metadata_path``; missing values are derived from the path (the
    first sub-folder below ``root`` is the category). ``id_prefix`` is put in front of every
    id (see ``folder_frame``); a split not given is hashed from the photo's pixels, so
    identical photos always share a split.
    """
    cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    rows = [
        _folder_row(cols, i, root=root, source=source, id_prefix=id_prefix)
        for i in range(batch.num_rows)
    ]
    # The photos of the batch are fetched together (concurrently on an object store).
    todo = [row for row in rows if row["reason"] is None]
    photos = storage.read_many([row["path"] for row in todo], limits.max_bytes + 1)
    for row, data in zip(todo, photos, strict=True):
        if isinstance(data, OSError):
            row["reason"] = f"unreadable file: {data.strerror or data}"
            continue
        try:
            img = normalise_image(
                data,
                max_side=limits.max_side,
                min_side=limits.min_side,
                max_pixels=limits.max_pixels,
                max_bytes=limits.max_bytes,
            )
        except ImageRejected as e:
            row["reason"] = str(e)
            continue
        row |= {
            "image": img.png,
            "width": img.width,
            "height": img.height,
            "channels": img.channels,
            "content_hash": img.content_hash,
            "split": row["split"] or hashed_split(img.content_hash, test_fraction),
        }
    return _staged(rows)


def _folder_row(
    cols: dict[str, list], i: int, *, root: str, source: str, id_prefix: str
) -> dict[str, str | None]:
    """Row ``i`` of a folder plan batch before its photo is read: ids, category and split
    derived from the path where the plan has none, and the first ``reason`` found."""
    path = cols["path"][i]
    rel = storage.relative(path, root) if path else None
    base_id = cols["item_id"][i] or (folder_item_id(rel) if rel else None)
    item_id = id_prefix + base_id if base_id else None
    category = cols["category_name"][i] or (rel.split("/")[0] if rel and "/" in rel else None)
    split = cols["split"][i]  # None: hashed from the photo once it is decoded
    row = {"item_id": item_id, "category_name": category, "split": split, "source": source}
    row["path"] = path or cols.get("metadata_path", [None] * len(cols["path"]))[i]
    reason = cols["reason"][i]
    if reason is None and not ITEM_ID_RE.match(item_id or ""):
        reason = f"invalid item_id {item_id!r} (letters, digits, '.', '_', '-'; max 128)"
    if reason is None and not category:
        reason = (
            "no category: put the file in a sub-folder named after its category, "
            "or give it in the metadata CSV"
        )
    if reason is None and split is not None and split not in SPLITS:
        reason = f"invalid split {split!r} (train or test)"
    row["reason"] = reason
    return row


METADATA_COLUMNS = ("item_id", "category", "path")


def read_metadata_header(csv_path: str | Path) -> list[str]:
    """Column names of a metadata CSV (a local path or a URI); raises ValueError naming
    what is missing."""
    csv_path = str(csv_path)
    if not storage.is_file(csv_path):
        raise FileNotFoundError(f"metadata CSV not found: {csv_path}")
    first = storage.read_bytes(csv_path, 64 * 1024).decode("utf-8-sig", "replace")
    header = [h.strip() for h in first.splitlines()[0].split(",")] if first else []
    missing = [c for c in ("item_id", "path") if c not in header]
    if missing:
        raise ValueError(
            f"metadata CSV {csv_path}: missing column(s) {', '.join(missing)} "
            f"(expected header item_id,category,path[,split]; got {','.join(header)})"
        )
    return header


def _read_metadata(spark: SparkSession, metadata_csv: str, header: list[str]) -> DataFrame:
    """The metadata CSV as a DataFrame of strings (empty cells null), read on the driver:
    it lists the feed's rows, small next to the photos it names."""
    import io

    import pyarrow.csv as pacsv

    data = storage.read_bytes(metadata_csv).removeprefix(b"\xef\xbb\xbf")
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types={h: pa.string() for h in header}, strings_can_be_null=True
        ),
    )
    return spark.createDataFrame(table)


def _metadata_plan(
    spark: SparkSession, files: DataFrame, metadata_csv: str, root_str: str
) -> DataFrame:
    """The folder's files matched with the metadata CSV's rows (paths relative to the root):
    a file not listed, a row without a path or whose file is missing, or a row without an
    item id becomes a row with that ``reason``."""
    from pyspark.sql import functions as F

    header = read_metadata_header(metadata_csv)
    meta = _read_metadata(spark, metadata_csv, header)
    absolute = F.udf(lambda p: storage.resolve(root_str, p) if p else None, "string")
    meta = meta.select(
        F.trim("item_id").alias("m_item_id"),
        (F.trim("category") if "category" in header else F.lit(None).cast("string")).alias(
            "m_category"
        ),
        (F.trim("split") if "split" in header else F.lit(None).cast("string")).alias("m_split"),
        absolute(F.trim("path")).alias("m_path"),
        F.lit(True).alias("in_meta"),
    )
    joined = files.join(meta, files.path == meta.m_path, "full_outer")
    return joined.select(
        F.when(F.col("path").isNotNull(), F.col("path")).alias("path"),
        F.col("m_item_id").alias("item_id"),
        F.when(F.col("m_category") != "", F.col("m_category")).alias("category_name"),
        F.when(F.col("m_split") != "", F.col("m_split")).alias("split"),
        F.when(F.col("in_meta").isNull(), F.lit("not listed in the metadata CSV"))
        .when(F.col("m_path").isNull(), F.lit("missing path in the metadata CSV"))
        .when(F.col("path").isNull(), F.concat(F.lit("file not found: "), F.col("m_path")))
        .when(F.col("m_item_id").isNull() | (F.col("m_item_id") == ""), F.lit("missing item_id"))
        .alias("reason"),
        F.col("m_path").alias("metadata_path"),
    )


def folder_frame(
    spark: SparkSession,
    root: str | Path,
    *,
    source: str,
    limits: ImageLimits,
    test_fraction: float,
    metadata_csv: str | Path | None = None,
    id_prefix: str = "",
) -> DataFrame:
    """Staged rows for every file below ``root`` (and every row of the metadata CSV).

    ``id_prefix`` namespaces the whole feed, so two feeds with overlapping file names (or
    overlapping SKUs) can coexist: every item id becomes PREFIX + the id made from the
    relative path, and ids from a metadata CSV get it too. One rule for all of a feed's ids
    keeps them predictable; whoever wants a CSV's ids verbatim leaves the prefix out (or
    writes it into the CSV). Ids in ``--discontinued`` / ``--take-over`` files are full
    catalogue ids: they are not prefixed.
    """
    from pyspark.sql import functions as F

    if id_prefix:
        check_id_prefix(id_prefix)
    root_str = storage.normalise(root)
    if storage.is_file(root_str) or not storage.exists(root_str):
        raise NotADirectoryError(f"not a folder: {root_str}")
    files = list_folder(spark, root_str)

    if metadata_csv is None:
        plan = files.select(
            "path",
            F.lit(None).cast("string").alias("item_id"),
            F.lit(None).cast("string").alias("category_name"),
            F.lit(None).cast("string").alias("split"),
            F.lit(None).cast("string").alias("reason"),
            F.lit(None).cast("string").alias("metadata_path"),
        )
    else:
        plan = _metadata_plan(spark, files, str(metadata_csv), root_str)

    parts = max(2, spark.sparkContext.defaultParallelism * 2)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield folder_batch(
                b,
                root=root_str,
                source=source,
                limits=limits,
                test_fraction=test_fraction,
                id_prefix=id_prefix,
            )

    return plan.repartition(parts).mapInArrow(run, STAGED_DDL)
