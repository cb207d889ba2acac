"""The command line and the spark-submit entry point, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.support.builders import REPO

BIN = Path(sys.executable).parent


def run(args: list[str], home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | {
        "LOOKALIKE_HOME": str(home),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "LOOKALIKE_SPARK_DRIVER_MEMORY": "1g",
    }
    return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "folder", "/no/such/folder"], "PATH: not a folder: /no/such/folder"),
        (["ingest", "fashion-mnist", "--limit", "0"], "--limit: must be >= 1, got 0"),
        (["ingest", "fashion-mnist", "--limit", "many"], "argument --limit: invalid int value"),
        (
            ["ingest", "fashion-mnist", "--discontinued", "/no/ids.txt"],
            "--discontinued: file not found: /no/ids.txt",
        ),
        (
            ["ingest", "folder", ".", "--metadata", "/no/meta.csv"],
            "--metadata: metadata CSV not found",
        ),
        (["ingest", "mnist"], "invalid choice: 'mnist'"),
        (
            ["ingest", "folder", ".", "--take-over", "/no/ids.txt"],
            "--take-over: file not found: /no/ids.txt",
        ),
        (
            ["ingest", "fashion-mnist", "--take-over=/no/ids.txt"],
            "--take-over: file not found: /no/ids.txt",
        ),
        (
            ["ingest", "folder", ".", "--id-prefix", "new feed/"],
            "--id-prefix: invalid id prefix 'new feed/'",
        ),
        (["ingest", "fashion-mnist", "--id-prefix", "x-"], "unrecognized arguments: --id-prefix"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(tmp_path, args, message):
    result = run([str(BIN / "lookalike"), *args], tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_metadata_csv_without_required_columns_is_refused(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text("sku,file\n1,a.png\n")
    result = run(
        [str(BIN / "lookalike"), "ingest", "folder", str(tmp_path), "--metadata", str(csv)],
        tmp_path,
    )
    assert result.returncode == 2
    assert "--metadata:" in result.stderr and "missing column(s) item_id, path" in result.stderr


def test_stats_without_a_catalogue_is_a_clear_error(tmp_path):
    result = run([str(BIN / "lookalike"), "catalog", "stats"], tmp_path)
    assert result.returncode == 1
    assert "no catalogue table" in result.stderr and "lookalike ingest" in result.stderr


@pytest.mark.slow
def test_folder_ingest_through_spark_submit(tmp_path, photo_folder):
    home = tmp_path / "home"
    job = str(REPO / "spark_jobs" / "ingest_catalog.py")
    out = tmp_path / "summary.json"
    args = [str(BIN / "spark-submit"), "--master", "local[2]", job, "folder", str(photo_folder)]
    result = run([*args, "--summary-file", str(out)], home)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "read 39, inserted 36" in result.stdout
    summary = json.loads(out.read_text())
    assert (summary["rows_read"], summary["inserted"], summary["rejected"]) == (39, 36, 3)
    table = DeltaTable(str(home / "lake" / "catalog"))
    assert table.version() == summary["version_after"] == 1
    assert table.to_pyarrow_table().num_rows == 36

    stats = run([str(BIN / "lookalike"), "catalog", "stats"], home)
    assert json.loads(stats.stdout)["rows"] == 36
    rejects = json.loads(run([str(BIN / "lookalike"), "catalog", "rejects"], home).stdout)
    assert sorted(r["reason"].split(":")[0] for r in rejects) == [
        "corrupt image",
        "empty file",
        "not an image (unrecognised file content)",
    ]
    # A rerun changing nothing: test_ingest_spark (in-process, the same job function).
