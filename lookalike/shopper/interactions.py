"""The ``interactions`` Delta table (change data feed on): what shoppers did with which item.

Input files, CSV or Parquet, in one of two documented formats:

* events: ``user_id, item_id, event_type, ts[, session_id]``; ``event_type`` is one of
  ``view``, ``add_to_cart``, ``purchase``; ``ts`` is ISO 8601 or epoch seconds; a missing
  ``session_id`` becomes ``<user_id>-<UTC date>``.
* MovieLens-style ratings: ``user,item,rating,timestamp`` (also ``userId,movieId,...``, and
  header-less ``ratings.dat`` (``::``) or ``u.data`` (tab) files). Each rating is an implicit
  interaction: ``event_type='view'`` with the rating kept in ``rating``.

A malformed row, or one naming an item the catalogue does not hold, is rejected with its
reason into ``interactions_rejects`` (once per input, keyed by its content hash) and counted;
the rest land in ONE MERGE keyed by a hash of the event, so re-ingesting a file commits
nothing. A file that is not one of the formats (missing columns) is refused as a whole.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties
from deltalake.exceptions import CommitFailedError

from lookalike import storage
from lookalike.catalog.table import (
    TS,
    append_rejects,
    conflict,
    delta_table,
    ensure_table,
    is_table,
    open_table,
    table_version,
)
from lookalike.config import Settings

EVENT_TYPES = ("view", "add_to_cart", "purchase")
MAX_ID_CHARS = 128
# A user id is what a URL path segment can carry unescaped; the service uses the same rule.
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
SUFFIXES = (".csv", ".parquet", ".dat", ".data", ".tsv")

INTERACTIONS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("rating", pa.float32()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("ingested_at", TS, nullable=False),
    ]
)
EVENT_COLUMNS = ("user_id", "item_id", "event_type", "ts")
MOVIELENS_ALIASES = {
    "user": "user",
    "userid": "user",
    "user_id": "user",
    "item": "item",
    "itemid": "item",
    "movieid": "item",
    "movie_id": "item",
    "rating": "rating",
    "timestamp": "timestamp",
}


class InteractionsError(RuntimeError):
    """An input file cannot be read as interactions at all; the message says why."""


@dataclass
class IngestSummary:
    """What ingesting one interactions file did: rows read, accepted, inserted, duplicates, and
    rejects by reason."""

    source: str
    run_id: str
    rows: int = 0
    accepted: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    table_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (the command's output, a DAG step's XCom)."""
        return asdict(self)


# ---------------------------------------------------------------- reading


def _read_raw(path: Path, data: bytes) -> tuple[pd.DataFrame, str]:
    """The file's rows (``data``, named ``path``) as strings, and its format (``events`` or
    ``movielens``)."""
    if path.suffix == ".parquet":
        frame = pq.read_table(io.BytesIO(data)).to_pandas()
    else:
        first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
        if "::" in first:  # MovieLens ratings.dat
            frame = pd.read_csv(
                io.BytesIO(data),
                sep="::",
                engine="python",
                header=None,
                dtype=str,
                keep_default_na=False,
            )
            frame = frame.iloc[:, :4]
            frame.columns = ["user", "item", "rating", "timestamp"][: frame.shape[1]]
        elif "\t" in first and not any(c.isalpha() for c in first):  # MovieLens u.data
            frame = pd.read_csv(
                io.BytesIO(data), sep="\t", header=None, dtype=str, keep_default_na=False
            )
            frame = frame.iloc[:, :4]
            frame.columns = ["user", "item", "rating", "timestamp"][: frame.shape[1]]
        else:
            sep = "\t" if path.suffix == ".tsv" else ","
            frame = pd.read_csv(io.BytesIO(data), sep=sep, dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    cols = set(frame.columns)
    if set(EVENT_COLUMNS) <= cols:
        return frame, "events"
    ml = {MOVIELENS_ALIASES[c.lower()]: c for c in frame.columns if c.lower() in MOVIELENS_ALIASES}
    if {"user", "item"} <= set(ml):
        frame = frame.rename(columns={v: k for k, v in ml.items()})
        if "timestamp" not in frame.columns:
            raise InteractionsError(f"{path.name}: MovieLens-style file without 'timestamp'")
        return frame, "movielens"
    missing = sorted(set(EVENT_COLUMNS) - cols)
    raise InteractionsError(
        f"{path.name}: missing columns {missing} (events: user_id,item_id,event_type,ts"
        "[,session_id]; or MovieLens-style user,item,rating,timestamp)"
    )


def _parse_ts(values: pd.Series) -> pd.Series:
    """ISO 8601 strings or epoch seconds -> UTC timestamps (NaT when neither)."""
    text = values.astype(str).str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    out = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    iso = numeric.isna()
    if iso.any():
        out[iso] = pd.to_datetime(text[iso], utc=True, errors="coerce", format="ISO8601")
    return out


def _event_ids(frame: pd.DataFrame) -> pd.Series:
    keys = (
        frame["user_id"]
        + "\x1f"
        + frame["item_id"]
        + "\x1f"
        + frame["event_type"]
        + "\x1f"
        + frame["ts"].astype("int64").astype(str)
        + "\x1f"
        + frame["session_id"]
    )
    return keys.map(lambda k: hashlib.blake2b(k.encode(), digest_size=12).hexdigest())


def validate(
    frame: pd.DataFrame, fmt: str, known_items: set[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw rows into (good rows in the table's columns, rejects ``row, item_id, reason``).

    The first reason found for a row is the one reported.
    """
    data, bad_rating = _normalised(frame, fmt)
    reason = pd.Series("", index=data.index, dtype=object)

    def flag(mask: pd.Series, why: str) -> None:
        reason[(reason == "") & mask] = why

    flag(data["user_id"].isin(["", "nan", "None"]), "missing user_id")
    flag(data["user_id"].str.len() > MAX_ID_CHARS, f"user_id longer than {MAX_ID_CHARS}")
    flag(
        ~data["user_id"].str.match(USER_ID_PATTERN),
        "malformed user_id (letters, digits and . _ : @ - only)",
    )
    flag(data["item_id"].isin(["", "nan", "None"]), "missing item_id")
    flag(data["item_id"].str.len() > MAX_ID_CHARS, f"item_id longer than {MAX_ID_CHARS}")
    flag(~data["event_type"].isin(EVENT_TYPES), f"event_type not one of {list(EVENT_TYPES)}")
    flag(data["ts"].isna(), "ts is not ISO 8601 or epoch seconds")
    flag(bad_rating, "rating is not a number")
    if known_items is not None:
        flag(~data["item_id"].isin(known_items), "unknown item (not in the catalogue)")
    ok = reason == ""
    rejects = pd.DataFrame(
        {
            "row": np.flatnonzero(~ok.to_numpy()) + 1,
            "item_id": data.loc[~ok, "item_id"].to_numpy(),
            "reason": reason[~ok].to_numpy(),
        }
    )
    good = data[ok].copy()
    no_session = good["session_id"].isin(["", "nan", "None"])
    good.loc[no_session, "session_id"] = (
        good.loc[no_session, "user_id"] + "-" + good.loc[no_session, "ts"].dt.strftime("%Y-%m-%d")
    )
    good["event_id"] = _event_ids(good) if len(good) else pd.Series(dtype=str)
    return good.reset_index(drop=True), rejects


def _normalised(frame: pd.DataFrame, fmt: str) -> tuple[pd.DataFrame, pd.Series]:
    """Raw rows of either format in the table's columns (trimmed ids, parsed timestamps;
    MovieLens rows are views with a rating), and which rows have a rating that is not a
    number."""
    n = len(frame)
    if fmt == "movielens":
        rating = pd.to_numeric(frame.get("rating", pd.Series([""] * n)), errors="coerce")
        data = pd.DataFrame(
            {
                "user_id": frame["user"].astype(str).str.strip(),
                "item_id": frame["item"].astype(str).str.strip(),
                "event_type": "view",
                "ts": _parse_ts(frame["timestamp"]),
                "session_id": "",
                "rating": rating.astype("float32"),
            }
        )
        bad_rating = (
            rating.isna() if "rating" in frame.columns else pd.Series(False, index=data.index)
        )
        return data, bad_rating
    data = pd.DataFrame(
        {
            "user_id": frame["user_id"].astype(str).str.strip(),
            "item_id": frame["item_id"].astype(str).str.strip(),
            "event_type": frame["event_type"].astype(str).str.strip().str.lower(),
            "ts": _parse_ts(frame["ts"]),
            "session_id": (
                frame["session_id"].astype(str).str.strip() if "session_id" in frame.columns else ""
            ),
            "rating": np.float32("nan"),
        }
    )
    return data, pd.Series(False, index=data.index)


# ---------------------------------------------------------------- writing


def known_catalog_items(settings: Settings) -> set[str]:
    """Item ids of the current catalogue (a clear error when there is none)."""
    table = open_table(settings.catalog_uri).to_pyarrow_table(columns=["item_id"])
    return set(table.column("item_id").to_pylist())


def merge_events(uri: str, good: pd.DataFrame, source: str, run_id: str) -> dict[str, Any]:
    """Insert events not in the table yet, in ONE commit (none when nothing is new)."""
    dt = ensure_table(uri, INTERACTIONS_SCHEMA)
    now = datetime.now(UTC)
    cols = {
        "event_id": pa.array(good["event_id"].tolist(), pa.string()),
        "user_id": pa.array(good["user_id"].tolist(), pa.string()),
        "item_id": pa.array(good["item_id"].tolist(), pa.string()),
        "event_type": pa.array(good["event_type"].tolist(), pa.string()),
        "ts": pa.array(good["ts"].dt.tz_convert("UTC"), TS),
        "session_id": pa.array(good["session_id"].tolist(), pa.string()),
        "rating": pa.array(
            good["rating"].to_numpy(dtype=np.float32), pa.float32(), from_pandas=True
        ),
        "source": pa.array([source] * len(good), pa.string()),
        "ingested_at": pa.array([now] * len(good), TS),
    }
    table = pa.Table.from_pydict(cols, schema=INTERACTIONS_SCHEMA)
    insert = {c: f"s.{c}" for c in INTERACTIONS_SCHEMA.names}
    try:
        return (
            dt.merge(
                table,
                predicate="t.event_id = s.event_id",
                source_alias="s",
                target_alias="t",
                commit_properties=CommitProperties(
                    custom_metadata={"run_id": run_id, "source": source}
                ),
            )
            .when_not_matched_insert(updates=insert)
            .execute()
        )
    except CommitFailedError as e:
        raise conflict(uri, e) from e


def ingest_file(
    settings: Settings, path: str | Path, *, source: str | None = None, check_items: bool = True
) -> IngestSummary:
    """Validate one file (a local path or a URI) and land its good rows in one commit;
    rejects are kept with reasons."""
    location = storage.normalise(path)
    if not storage.is_file(location):
        raise FileNotFoundError(f"no interactions file at {location}")
    data = storage.read_bytes(location)
    frame, fmt = _read_raw(Path(storage.name(location)), data)
    digest = hashlib.sha256(data).hexdigest()[:16]
    source = source or f"file:{storage.name(location)}"
    run_id = f"interactions-{digest}"
    known = known_catalog_items(settings) if check_items else None
    good, rejects = validate(frame, fmt, known)
    before = len(good)
    good = good.drop_duplicates("event_id")
    summary = IngestSummary(
        source=source,
        run_id=run_id,
        rows=len(frame),
        accepted=len(good),
        duplicates=before - len(good),
        rejected=len(rejects),
        reasons=dict(Counter(rejects["reason"])),
    )
    if len(rejects):
        staged = storage.join(settings.staging_uri, f"{run_id}-{uuid.uuid4().hex[:8]}")
        try:
            _write_parquet(
                pa.table(
                    {
                        "run_id": [run_id] * len(rejects),
                        "source": [source] * len(rejects),
                        "path": [f"{location}:{r}" for r in rejects["row"]],
                        "item_id": rejects["item_id"].astype(str).tolist(),
                        "reason": rejects["reason"].tolist(),
                        "rejected_at": pa.array([datetime.now(UTC)] * len(rejects), TS),
                    }
                ),
                storage.join(staged, "rejects.parquet"),
            )
            append_rejects(settings.interactions_rejects_uri, staged, run_id)
        finally:
            storage.remove_tree(staged)
    if len(good):
        metrics = merge_events(settings.interactions_uri, good, source, run_id)
        summary.inserted = int(metrics.get("num_target_rows_inserted", 0))
    summary.table_version = table_version(settings.interactions_uri)
    return summary


def _write_parquet(table: pa.Table, uri: str) -> None:
    """One Parquet file at a location (local or object store), written whole."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    storage.write_bytes(uri, sink.getvalue().to_pybytes())


def land_events(events: pa.Table, uri: str) -> str:
    """Land a file of events at a location (default folder: the landing folder); it appears
    whole or not at all, so a half-written file is never ingested. Returns the location."""
    uri = storage.normalise(uri)
    _write_parquet(events, uri)
    return uri


def landed_files(settings: Settings) -> list[str]:
    """Interaction files in the landing folder (local or object store), oldest name first."""
    return [
        e.uri
        for e in storage.listdir(settings.interactions_landing_uri)
        if not e.is_dir and Path(storage.name(e.uri)).suffix in SUFFIXES
    ]


def read_interactions(uri: str, version: int | None = None) -> pa.Table:
    """The columns training needs, at a Delta version (default: the latest)."""
    if not is_table(uri):
        raise InteractionsError(
            f"no interactions table at {uri}: run `lookalike shopper ingest` "
            "or `lookalike shopper simulate --ingest` first"
        )
    return delta_table(uri, version).to_pyarrow_table(
        columns=["user_id", "item_id", "event_type", "ts", "rating"]
    )
