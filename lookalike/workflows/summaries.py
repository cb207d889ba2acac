"""The JSON summaries Spark jobs write (``--summary-file``), read back by the steps after them.

A DAG templates one path per task and run (``lookalike_airflow.operators.summary_path``), passes
it to the job and then to the step that needs the job's result, so a retry overwrites the file
instead of leaving a stale one behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_summary(path: str) -> dict[str, Any]:
    """The summary a job wrote at ``path`` (its ``--summary-file``)."""
    return json.loads(Path(path).read_text())
