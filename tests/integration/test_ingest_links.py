"""Photo folders with symbolic links, and unexpected failures, through real Spark and Delta:
in-process, through the ``lookalike`` command and through ``spark_jobs/ingest_catalog.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lookalike import storage
from lookalike.catalog.ingest import IngestFailed, ingest_folder, run_ingest
from lookalike.catalog.sources import STAGED_DDL
from lookalike.catalog.table import table_version
from tests.support.builders import REPO, write_photo

BIN = Path(sys.executable).parent
OWN, LINKED = 5, 46  # the folder: 51 photos, 46 of them links to a sibling folder


def make_linked_folder(base: Path) -> Path:
    """``photos/`` beside ``assets/``: 5 own photos, 46 links to photos in ``assets/``, a link
    to a photo inside the folder, a dangling link, a loop and a folder link back up."""
    root, assets = base / "photos", base / "assets"
    for i in range(OWN):
        write_photo(root / "Shoes" / f"own {i}.png", seed=i)
    (root / "Hats").mkdir()
    for i in range(LINKED):
        write_photo(assets / f"icon {i}.png", seed=100 + i)
        (root / ("Hats" if i % 2 else "Shoes") / f"link {i}.png").symlink_to(
            assets / f"icon {i}.png"
        )
    shoes = root / "Shoes"
    (shoes / "same as own 0.png").symlink_to("own 0.png")
    (shoes / "gone.png").symlink_to("../../assets/deleted.png")
    (shoes / "loop.png").symlink_to("loop.png")
    (shoes / "up").symlink_to("..")
    return root


def reasons(rejects_uri: str) -> dict[str, str]:
    table = DeltaTable(rejects_uri).to_pyarrow_table().to_pylist()
    return {r["item_id"]: r["reason"] for r in table}


def test_links_are_read_through_under_their_own_ids(spark, settings, tmp_path):
    root = make_linked_folder(tmp_path)
    summary = ingest_folder(spark, root, settings=settings)
    assert (summary.rows_read, summary.inserted, summary.rejected) == (55, 52, 3)
    table = DeltaTable(settings.catalog_uri).to_pyarrow_table().to_pylist()
    items = {r["item_id"]: r for r in table}
    assert "Hats-link-1" in items and "Shoes-link-0" in items and "Shoes-own-0" in items
    assert items["Shoes-same-as-own-0"]["content_hash"] == items["Shoes-own-0"]["content_hash"]
    assert reasons(settings.rejects_uri) == {
        "Shoes-gone": "dangling link: its target ../../assets/deleted.png does not exist",
        "Shoes-loop": "link loop: its target loop.png leads back to it",
        "Shoes-up": f"link loop: its target {root} is a folder that contains it",
    }

    strict = settings.model_copy(
        update={"home": tmp_path / "strict", "ingest_follow_links_out": False}
    )
    refused = ingest_folder(spark, root, settings=strict)
    assert (refused.inserted, refused.rejected) == (OWN + 1, LINKED + 3)
    out = [r for r in reasons(strict.rejects_uri).values() if "leaves the folder" in r]
    assert len(out) == LINKED


def test_a_metadata_csv_may_name_links(spark, settings, tmp_path):
    root = make_linked_folder(tmp_path)
    csv = tmp_path / "meta.csv"
    csv.write_text(
        "item_id,category,path\nsku-1,Icons,Hats/link 1.png\nsku-2,Icons,Shoes/gone.png\n"
    )
    summary = ingest_folder(spark, root, settings=settings, metadata_csv=csv)
    assert (summary.inserted, summary.rows_read - summary.rejected) == (1, 1)
    got = reasons(settings.rejects_uri)
    assert got["sku-2"].startswith("dangling link")
    assert got["Shoes-own-0"] == "not listed in the metadata CSV"


def test_a_failing_spark_task_ends_the_run_in_one_line_table_untouched(spark, settings, tmp_path):
    root = tmp_path / "photos"
    write_photo(root / "Shoes" / "a.png", seed=1)
    first = ingest_folder(spark, root, settings=settings)

    def broken(batches):
        for _ in batches:
            raise RuntimeError("simulated worker bug")
        yield from ()

    staged = spark.range(4).mapInArrow(broken, STAGED_DDL)
    with pytest.raises(IngestFailed) as failed:
        run_ingest(spark, staged, source="broken", settings=settings)
    assert str(failed.value) == (
        "ingest failed in a Spark task: RuntimeError: simulated worker bug "
        "(the catalogue is unchanged)"
    )
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert table_version(settings.catalog_uri) == first.version_after
    assert storage.listdir(settings.staging_uri) == []  # the run's scratch space is gone

    def killed(batches):
        for _ in batches:
            os._exit(3)  # a worker that dies without a Python exception
        yield from ()

    staged = spark.range(1).mapInArrow(killed, STAGED_DDL)
    with pytest.raises(IngestFailed, match=r"in a Spark task: Python worker exited unexpected"):
        run_ingest(spark, staged, source="broken", settings=settings)

    # Rows an executor marked as failed (what folder_batch does on an unexpected error).
    failures = [(f"/x/{n}.png", "RuntimeError: bug") for n in ("b", "a")]
    staged = spark.createDataFrame(failures, "path string, failure string")
    staged = spark.createDataFrame([], STAGED_DDL).unionByName(staged, allowMissingColumns=True)
    with pytest.raises(IngestFailed) as failed:
        run_ingest(spark, staged, source="s", settings=settings)
    assert str(failed.value) == (
        "ingest failed on /x/a.png: RuntimeError: bug; 1 more file(s) failed too "
        "(the catalogue is unchanged)"
    )
    assert table_version(settings.catalog_uri) == first.version_after


# ---------------------------------------------------------------- as processes --------------

#: Loaded by every Python process of the run (driver and Spark workers): photos whose bytes
#: start with BOOM make the decoder raise, an unexpected failure inside a worker.
INJECT = """
import lookalike.images as images

_normalise = images.normalise_image


def normalise_image(data, **limits):
    if data.startswith(b"BOOM"):
        raise RuntimeError("simulated decoder bug")
    return _normalise(data, **limits)


images.normalise_image = normalise_image
"""


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    env = (
        os.environ
        | env
        | {
            "LOOKALIKE_HOME": str(home),
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "LOOKALIKE_SPARK_DRIVER_MEMORY": "1g",
        }
    )
    return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_ingests_links_and_reports_a_worker_failure_in_one_line(tmp_path):
    home, root = tmp_path / "home", make_linked_folder(tmp_path)
    ok = run([str(BIN / "lookalike"), "ingest", "folder", str(root)], home)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "read 55, inserted 52" in ok.stdout and "rejected 3" in ok.stdout
    assert f"rejected {root}/Shoes/gone.png: dangling link" in ok.stdout
    version = DeltaTable(str(home / "lake" / "catalog")).version()

    boom = root / "Shoes" / "boom.png"
    boom.write_bytes(b"BOOM, not a photo")
    write_photo(root / "Shoes" / "new.png", seed=999)
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(INJECT)
    failed = run(
        [str(BIN / "lookalike"), "ingest", "folder", str(root)],
        home,
        PYTHONPATH=str(tmp_path / "inject"),
    )
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "PythonException" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("lookalike: error")]
    assert errors == [
        f"lookalike: error: ingest failed on {boom}: RuntimeError: simulated decoder bug "
        "(the catalogue is unchanged)"
    ]
    assert DeltaTable(str(home / "lake" / "catalog")).version() == version
    assert (
        "Shoes-new"
        not in DeltaTable(str(home / "lake" / "catalog")).to_pyarrow_table()["item_id"].to_pylist()
    )


@pytest.mark.slow
def test_spark_submit_ingests_links(tmp_path):
    home, root = tmp_path / "home", make_linked_folder(tmp_path)
    job = str(REPO / "spark_jobs" / "ingest_catalog.py")
    summary_file = tmp_path / "summary.json"
    args = [str(BIN / "spark-submit"), "--master", "local[2]", job, "folder", str(root)]
    result = run(
        [*args, "--summary-file", str(summary_file)],
        home,
        LOOKALIKE_INGEST_FOLLOW_LINKS_OUT="false",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    summary = json.loads(summary_file.read_text())
    assert (summary["inserted"], summary["rejected"]) == (OWN + 1, LINKED + 3)
    assert "Traceback" not in result.stderr
    ids = DeltaTable(str(home / "lake" / "catalog")).to_pyarrow_table()["item_id"].to_pylist()
    assert sorted(ids) == sorted([f"Shoes-own-{i}" for i in range(OWN)] + ["Shoes-same-as-own-0"])
