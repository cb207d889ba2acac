"""The ``embeddings`` table's change data feed, as a serving process follows it between index
snapshots.

An index snapshot records the ``embeddings`` version it holds (``embeddings_version`` in its
manifest). Everything committed after it for the snapshot's encoder is read here as net
changes per item (the last change wins): upserts with their vectors, and deletes. Vectors are
checked before anyone hands them to ScaNN (a NaN upsert kills the process in ScaNN 1.4.2):
a row without a vector, of the wrong dimension or with a NaN or an infinity is skipped with
its reason, and the rest applies. Rows of other encoders are not this snapshot's business: a
new encoder needs a full build and a bundle swap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookalike.catalog.table import delta_table, is_table

log = logging.getLogger(__name__)

FEED_COLUMNS = [
    "item_id",
    "encoder_name",
    "encoder_version",
    "embedding",
    "catalog_version",
    "_change_type",
    "_commit_version",
]
FEED_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string()),
        pa.field("encoder_name", pa.string()),
        pa.field("encoder_version", pa.string()),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("catalog_version", pa.int64()),
        pa.field("_change_type", pa.string()),
        pa.field("_commit_version", pa.int64()),
    ]
)
#: Order of change rows inside one commit: a pre-image comes before its post-image.
_RANK = {"update_preimage": 0, "delete": 1, "insert": 1, "update_postimage": 2}


@dataclass(frozen=True)
class Skipped:
    """A change that was not applied, and why (logged and counted by the reader's owner).
    ``kind``: a fixed word for the reason (a metric label); ``reason``: the sentence."""

    item_id: str | None
    kind: str
    reason: str


@dataclass(frozen=True)
class FeedChanges:
    """Net changes of one encoder's rows committed after ``since_version`` up to
    ``until_version`` (inclusive): what a searcher at ``since_version`` applies to be at
    ``until_version``."""

    since_version: int
    until_version: int
    upserts: list[str] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    catalog_version: int | None = None  # the newest catalogue version an upsert came from
    deletes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing to apply (the version may still move: other encoders' rows, no-ops)."""
        return not (self.upserts or self.deletes)


def check_vector(value: list[float] | None, dim: int) -> np.ndarray | Skipped:
    """The vector when ``value`` can go to ScaNN; otherwise why not (item id left unset)."""
    if value is None:
        return Skipped(None, "no_vector", "row without a vector")
    vector = np.asarray(value, dtype=np.float32)
    if vector.shape != (dim,):
        return Skipped(None, "dimension", f"vector of dimension {vector.size}, the index has {dim}")
    if not np.isfinite(vector).all():
        return Skipped(None, "not_finite", "vector holds NaN or infinity")
    return vector


def net_changes(feed: pa.Table, dim: int, since_version: int, until_version: int) -> FeedChanges:
    """The net effect per item of ``feed`` (FEED_SCHEMA rows of one encoder), vectors checked."""
    ids = feed.column("item_id").to_pylist()
    types = feed.column("_change_type").to_pylist()
    versions = feed.column("_commit_version").to_pylist()
    last: dict[str, int] = {}
    skipped: list[Skipped] = []
    for i in sorted(range(len(ids)), key=lambda i: (versions[i], _RANK.get(types[i], 1))):
        if ids[i] is None:
            skipped.append(Skipped(None, "no_item_id", "row without an item id"))
        elif types[i] != "update_preimage":
            last[ids[i]] = i
    upserts, vectors, catalog_versions, deletes = [], [], [], []
    embeddings = feed.column("embedding")
    cv = feed.column("catalog_version")
    for item_id, i in sorted(last.items()):
        if types[i] == "delete":
            deletes.append(item_id)
            continue
        vector = check_vector(embeddings[i].as_py(), dim)
        if isinstance(vector, Skipped):
            skipped.append(Skipped(item_id, vector.kind, vector.reason))
            continue
        upserts.append(item_id)
        vectors.append(vector)
        catalog_versions.append(cv[i].as_py())
    return FeedChanges(
        since_version=since_version,
        until_version=until_version,
        upserts=upserts,
        vectors=np.stack(vectors) if vectors else np.zeros((0, dim), np.float32),
        catalog_version=max((v for v in catalog_versions if v is not None), default=None),
        deletes=deletes,
        skipped=skipped,
    )


def latest_version(uri: str) -> int | None:
    """The ``embeddings`` table's current version (None: no table yet); reads the log only."""
    if not is_table(uri):
        return None
    return int(delta_table(uri).version())


def read_feed(
    uri: str, encoder: tuple[str, str], dim: int, since_version: int, until_version: int
) -> FeedChanges:
    """Net changes of ``encoder`` (name, version) rows committed in
    (``since_version``, ``until_version``]."""
    if until_version <= since_version:
        return FeedChanges(since_version, max(since_version, until_version))
    dt = delta_table(uri, until_version)
    reader = dt.load_cdf(
        starting_version=since_version + 1, ending_version=until_version, columns=FEED_COLUMNS
    )
    # delta-rs hands out string_view columns: cast before comparing or taking
    feed = pa.table(reader).select(FEED_COLUMNS).cast(FEED_SCHEMA)
    mine = feed.filter(
        (pc.field("encoder_name") == encoder[0]) & (pc.field("encoder_version") == encoder[1])
    )
    return net_changes(mine, dim, since_version, until_version)
