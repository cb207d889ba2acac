"""The JSON summaries Spark jobs write (``--summary-file``), read back by the steps after them.

A DAG templates one location per task and run on the shared store
(``lookalike_airflow.operators.summary_path``), passes it to the job and then to the step that
needs the job's result: the two may run on hosts that share no disk, and a retry overwrites
the file instead of leaving a stale one behind.
"""

from __future__ import annotations

import json
from typing import Any

from lookalike import storage


def read_summary(uri: str) -> dict[str, Any]:
    """The summary a job wrote at ``uri`` (its ``--summary-file``: a path or a store URI)."""
    return json.loads(storage.read_bytes(uri))


def write_summary(result: dict[str, Any], uri: str) -> None:
    """Write a job's JSON summary (whole or not at all)."""
    storage.write_bytes(uri, json.dumps(result, indent=2, default=str).encode())
