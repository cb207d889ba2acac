"""Where catalogue rows come from: Fashion-MNIST IDX files and folders of product photos.

Each source becomes a Spark DataFrame of STAGED rows, decoded and validated on executors.
The per-batch work is in plain Arrow functions (``fashion_mnist_batch``, ``folder_batch``)
that unit tests call without Spark. A staged row either carries a normalised image or a
``reason`` it was rejected; nothing is dropped silently.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        ("failure", pa.string()),  # an unexpected error: the run stops (never committed)
    ]
)
STAGED_DDL = (
    "item_id string, category_name string, image binary, width int, height int, channels int, "
    "content_hash string, split string, source string, path string, reason string, "
    "failure string"
)


class SourceError(RuntimeError):
    """A source cannot be read at all (its folder cannot be listed): nothing was ingested."""


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
                try:
                    yield fashion_mnist_batch(data_dir, split, start, count)
                except Exception as e:  # the run stops with one line, not a Spark traceback
                    where = f"{data_dir}/{FASHION_MNIST_FILES[split][0]}#{start}-{start + count}"
                    yield _staged([{"path": where, "failure": failure_text(e)}])

    return work.mapInArrow(run, STAGED_DDL)


# ---------------------------------------------------------------- photo folders --------------

#: One listed file: its location (a link keeps its own path: the id is made from it), the
#: reason it is rejected without being read (None: read it), and an unexpected failure
#: (None: none; any ends the run before anything is committed, see ``ingest``).
Listed = tuple[str, str | None, str | None]
LISTING_DDL = "path string, reason string, failure string"
#: Why a link is refused when ``follow_links_out`` is off (the setting that turns it off).
LINK_OUT_SETTING = "LOOKALIKE_INGEST_FOLLOW_LINKS_OUT=false"


def failure_text(e: BaseException) -> str:
    """One line saying what went wrong (exception type and message), for the run's error."""
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text}"


def readable_path(path: str) -> str:
    """``path`` as valid UTF-8 (a name that is not shows U+FFFD): Arrow strings must be."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_below(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return path


def _follow(
    entry: os.DirEntry, real_root: str, follow_links_out: bool
) -> tuple[str | None, os.stat_result | None]:
    """What a local entry (a file or folder, perhaps a link) is once every link on the way is
    followed, or why it cannot be: a dangling link, a link loop, a link out of the folder
    when that is off."""
    path = entry.path
    try:
        st = entry.stat()  # follows links
    except FileNotFoundError:
        if entry.is_symlink():
            return f"dangling link: its target {_link_target(path)} does not exist", None
        return "file vanished while the folder was listed", None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"link loop: its target {_link_target(path)} leads back to it", None
        return f"unreadable file: {e.strerror or e}", None
    if not follow_links_out and entry.is_symlink():
        target = os.path.realpath(path)
        if not _is_below(target, real_root):
            return f"link leaves the folder: its target is {target} ({LINK_OUT_SETTING})", None
    return None, st


def _scan_dir(
    folder: str, ancestors: frozenset[str], real_root: str, follow_links_out: bool
) -> tuple[list[Listed], list[tuple[str, frozenset[str]]]]:
    """One local folder's entries: files (with their reasons) and the sub-folders to walk,
    each with the real paths of the folders above it, which no link may lead back to.
    ``OSError`` when the folder itself cannot be listed."""
    files: list[Listed] = []
    subdirs: list[tuple[str, frozenset[str]]] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = entry.path
        try:
            if readable_path(path) != path:
                files.append((readable_path(path), "name is not valid UTF-8", None))
                continue
            problem, st = _follow(entry, real_root, follow_links_out)
            if st is not None and stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(path)
                if real not in ancestors:
                    subdirs.append((path, ancestors | {real}))
                    continue
                problem = f"link loop: its target {real} is a folder that contains it"
            if st is not None and not stat.S_ISREG(st.st_mode) and problem is None:
                problem = "not a regular file"
            files.append((path, problem, None))
        except Exception as e:  # a bug or an odd file system: fail the run, naming the file
            files.append((readable_path(path), None, failure_text(e)))
    return files, subdirs


def walk_local(top: str, root: str, *, follow_links_out: bool = True) -> list[Listed]:
    """Every file below the local folder ``top`` (inside the ingested folder ``root``), as
    ``Listed`` rows, in order.

    Links are followed (os.walk and pyarrow would skip a dangling one silently, and pyarrow
    walks a loop until the path is too long): a link keeps its own path below ``root`` and is
    read through to its target; a dangling link, a loop (a file link cycle or a folder link
    to a folder above it), or a link out of ``root`` when ``follow_links_out`` is off is
    listed with its reason instead.
    """
    real_root = os.path.realpath(root)
    stack = [(top, frozenset({real_root, os.path.realpath(top)}))]
    out: list[Listed] = []
    while stack:
        folder, ancestors = stack.pop()
        try:
            files, subdirs = _scan_dir(folder, ancestors, real_root, follow_links_out)
        except OSError as e:
            out.append((readable_path(folder), f"unreadable folder: {e.strerror or e}", None))
            continue
        out += files
        stack += subdirs
    return sorted(out)


def walk_files(top: str) -> list[str]:
    """Every file below ``top``, a local folder or an object-store prefix (hidden ones too:
    they are reported, not skipped), sorted."""
    if storage.is_local(top):
        return [path for path, _, _ in walk_local(storage.normalise(top), storage.normalise(top))]
    return [e.uri for e in storage.listdir(top, recursive=True) if not e.is_dir]


def _walk_guarded(top: str, root: str, follow_links_out: bool) -> list[Listed]:
    """``walk_local`` or an object-store listing of ``top``, on an executor; an exception
    becomes a failure row naming ``top`` instead of a Spark task failure."""
    try:
        if storage.is_local(top):
            return walk_local(top, root, follow_links_out=follow_links_out)
        return [(e.uri, None, None) for e in storage.listdir(top, recursive=True) if not e.is_dir]
    except Exception as e:
        return [(readable_path(top), None, f"cannot list the folder: {failure_text(e)}")]


def _top_level(root: str, follow_links_out: bool) -> tuple[list[Listed], list[str]]:
    """The files directly in ``root`` and its sub-folders (walked on executors)."""
    if not storage.is_local(root):
        entries = storage.listdir(root)
        return [(e.uri, None, None) for e in entries if not e.is_dir], [
            e.uri for e in entries if e.is_dir
        ]
    real_root = os.path.realpath(root)
    files, subdirs = _scan_dir(root, frozenset({real_root}), real_root, follow_links_out)
    return files, [path for path, _ in subdirs]


def list_folder(spark: SparkSession, root: str, *, follow_links_out: bool = True) -> DataFrame:
    """All files below ``root`` as a DataFrame of ``Listed`` rows; sub-folders are listed on
    executors (through ``pyarrow.fs`` on an object store, which has no links; with
    ``walk_local`` on a local disk, which follows them).

    Spark's binaryFile source is not used: it silently skips empty files, which must be
    reported as rejects instead.
    """
    top_files, subdirs = _top_level(root, follow_links_out)
    files = spark.createDataFrame(top_files, LISTING_DDL)
    if subdirs:
        walk = functools.partial(_walk_guarded, root=root, follow_links_out=follow_links_out)
        walked = spark.sparkContext.parallelize(subdirs, len(subdirs)).flatMap(walk)
        files = files.unionByName(spark.createDataFrame(walked, LISTING_DDL))
    return files


def relative_to_folder(path: str, root: str) -> str | None:
    """``path`` below the folder ``root``, ``/``-separated, or None when it is not below.
    Nothing is resolved: a link's id is its own path, wherever its target is
    (``storage.relative`` resolves local links)."""
    if storage.is_local(path):
        base = os.path.normpath(str(root).removeprefix("file://"))
        target = os.path.normpath(os.path.abspath(path.removeprefix("file://")))
    else:
        base, target = str(root).rstrip("/"), path.rstrip("/")
    if not target.startswith(base.rstrip("/") + "/"):
        return None
    return target[len(base.rstrip("/")) + 1 :]


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
    file), ``item_id``, ``category_name``, ``split``, ``reason`` (problems found earlier:
    metadata, links), optionally ``metadata_path`` and ``failure``; missing values are
    derived from the path (the first sub-folder below ``root`` is the category).
    ``id_prefix`` is put in front of every id (see ``folder_frame``); a split not given is
    hashed from the photo's pixels, so identical photos always share a split. An
    unexpected exception on one file lands in its row's ``failure``, not in a Spark task
    failure: the run then stops, naming the file (``ingest``).
    """
    cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    rows = []
    for i in range(batch.num_rows):
        try:
            rows.append(_folder_row(cols, i, root=root, source=source, id_prefix=id_prefix))
        except Exception as e:
            path = cols["path"][i] or _column(cols, "metadata_path")[i]
            rows.append(
                {"path": path, "source": source, "reason": None, "failure": failure_text(e)}
            )
    # The photos of the batch are fetched together (concurrently on an object store).
    todo = [row for row in rows if row["reason"] is None and row["failure"] is None]
    photos = storage.read_many([row["path"] for row in todo], limits.max_bytes + 1)
    for row, data in zip(todo, photos, strict=True):
        try:
            _add_photo(row, data, limits, test_fraction)
        except ImageRejected as e:
            row["reason"] = str(e)
        except Exception as e:
            row["failure"] = failure_text(e)
    return _staged(rows)


def _add_photo(row: dict, data: bytes | OSError, limits: ImageLimits, test_fraction: float) -> None:
    """The normalised photo's columns into ``row`` (``ImageRejected`` saying why not)."""
    if isinstance(data, OSError):
        raise ImageRejected(f"unreadable file: {data.strerror or data}")
    img = normalise_image(
        data,
        max_side=limits.max_side,
        min_side=limits.min_side,
        max_pixels=limits.max_pixels,
        max_bytes=limits.max_bytes,
    )
    row |= {
        "image": img.png,
        "width": img.width,
        "height": img.height,
        "channels": img.channels,
        "content_hash": img.content_hash,
        "split": row["split"] or hashed_split(img.content_hash, test_fraction),
    }


def _column(cols: dict[str, list], name: str) -> list:
    """An optional plan column (all nulls when the plan has none)."""
    return cols.get(name) or [None] * len(cols["path"])


def _folder_row(
    cols: dict[str, list], i: int, *, root: str, source: str, id_prefix: str
) -> dict[str, str | None]:
    """Row ``i`` of a folder plan batch before its photo is read: ids, category and split
    derived from the path where the plan has none, and the first ``reason`` found."""
    path = cols["path"][i]
    rel = relative_to_folder(path, root) if path else None
    base_id = cols["item_id"][i] or (folder_item_id(rel) if rel else None)
    item_id = id_prefix + base_id if base_id else None
    category = cols["category_name"][i] or (rel.split("/")[0] if rel and "/" in rel else None)
    split = cols["split"][i]  # None: hashed from the photo once it is decoded
    row = {"item_id": item_id, "category_name": category, "split": split, "source": source}
    row["path"] = path or _column(cols, "metadata_path")[i]
    row["failure"] = _column(cols, "failure")[i]
    reason = cols["reason"][i]
    if reason is None and path and rel is None:
        reason = f"not below the folder {root}"
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
    """The folder's files matched with the metadata CSV's rows (paths relative to the root,
    a link's own path): a file not listed, a row without a path or whose file is missing, a
    listed file the listing rejected (a dangling link...), or a row without an item id
    becomes a row with that ``reason``."""
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
    files = files.select("path", F.col("reason").alias("f_reason"), "failure")
    joined = files.join(meta, files.path == meta.m_path, "full_outer")
    return joined.select(
        F.when(F.col("path").isNotNull(), F.col("path")).alias("path"),
        F.col("m_item_id").alias("item_id"),
        F.when(F.col("m_category") != "", F.col("m_category")).alias("category_name"),
        F.when(F.col("m_split") != "", F.col("m_split")).alias("split"),
        F.when(F.col("in_meta").isNull(), F.lit("not listed in the metadata CSV"))
        .when(F.col("m_path").isNull(), F.lit("missing path in the metadata CSV"))
        .when(F.col("path").isNull(), F.concat(F.lit("file not found: "), F.col("m_path")))
        .when(F.col("f_reason").isNotNull(), F.col("f_reason"))  # a dangling link, a loop...
        .when(F.col("m_item_id").isNull() | (F.col("m_item_id") == ""), F.lit("missing item_id"))
        .alias("reason"),
        F.col("m_path").alias("metadata_path"),
        "failure",
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
    follow_links_out: bool = True,
) -> DataFrame:
    """Staged rows for every file below ``root`` (and every row of the metadata CSV).

    ``id_prefix`` namespaces the whole feed, so two feeds with overlapping file names (or
    overlapping SKUs) can coexist: every item id becomes PREFIX + the id made from the
    relative path, and ids from a metadata CSV get it too. One rule for all of a feed's ids
    keeps them predictable; whoever wants a CSV's ids verbatim leaves the prefix out (or
    writes it into the CSV). Ids in ``--discontinued`` / ``--take-over`` files are full
    catalogue ids: they are not prefixed. Links are read through (``walk_local``);
    ``follow_links_out=False`` rejects those whose target is outside ``root``.
    """
    from pyspark.sql import functions as F

    if id_prefix:
        check_id_prefix(id_prefix)
    root_str = storage.normalise(root)
    if storage.is_file(root_str) or not storage.exists(root_str):
        raise NotADirectoryError(f"not a folder: {root_str}")
    try:
        files = list_folder(spark, root_str, follow_links_out=follow_links_out)
    except OSError as e:
        raise SourceError(f"cannot list the folder {root_str}: {e.strerror or e}") from None

    if metadata_csv is None:
        plan = files.select(
            "path",
            *[F.lit(None).cast("string").alias(c) for c in ("item_id", "category_name", "split")],
            "reason",
            F.lit(None).cast("string").alias("metadata_path"),
            "failure",
        )
    else:
        plan = _metadata_plan(spark, files, str(metadata_csv), root_str)

    parts = max(2, spark.sparkContext.defaultParallelism * 2)
    options = {
        "root": root_str,
        "source": source,
        "limits": limits,
        "test_fraction": test_fraction,
        "id_prefix": id_prefix,
    }

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield _guarded_batch(b, **options)

    return plan.repartition(parts).mapInArrow(run, STAGED_DDL)


def _guarded_batch(batch: pa.RecordBatch, **options: Any) -> pa.RecordBatch:
    """``folder_batch``; should it fail as a whole (a bug), every file of the batch gets
    the failure, so the run stops with one line instead of a Spark traceback."""
    try:
        return folder_batch(batch, **options)
    except Exception as e:
        paths = batch.column("path").to_pylist()
        failure = f"{failure_text(e)} (in a batch of {len(paths)} files)"
        return _staged([{"path": p, "failure": failure} for p in paths])
