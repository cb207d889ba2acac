"""Cluster-ready, not only local: a Spark standalone master and 2 workers on loopback run the
ingest and embedding jobs through spark-submit.

Where mount namespaces are available (CI runs as root), ``test_no_shared_disk`` runs these
jobs and more on the same kind of cluster, with workers that cannot see the driver's disk;
this lighter check is for machines where it is skipped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lookalike.similarity.config import TrainConfig
from tests.support.builders import TINY_TRAIN
from tests.support.namespaces import can_hide

BIN = Path(sys.executable).parent


@pytest.mark.slow
@pytest.mark.skipif(can_hide(), reason="test_no_shared_disk covers a standalone cluster here")
def test_ingest_and_embed_jobs_on_a_standalone_cluster(tmp_path):
    from lookalike.config import Settings
    from lookalike.similarity.training import run_training
    from tests.support.spark_standalone import spark_submit, standalone_cluster

    home = tmp_path / "home"
    env = os.environ | {
        "LOOKALIKE_HOME": str(home),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "SPARK_LOCAL_IP": "127.0.0.1",  # the driver stays on loopback too
        "PYSPARK_PYTHON": sys.executable,
    }

    def submit(master: str, job: str, *args: str) -> dict:
        return spark_submit(env, master, job, *args, summary=str(tmp_path / f"{job}.json"))

    with standalone_cluster(tmp_path / "spark", workers=2, cores=1, memory="1g") as cluster:
        assert cluster.alive_workers() == 2
        ingest = submit(cluster.master_url, "ingest_catalog.py", "fashion-mnist", "--limit", "150")
        assert ingest["inserted"] == 300
        settings = Settings(home=home, spark_shuffle_partitions=4)
        encoder = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=50)
        embed = submit(
            cluster.master_url, "embed_catalog.py", "--encoder", str(encoder.model_version)
        )
        apps = cluster.status()["completedapps"]
    assert embed["embedded"] == 300
    table = DeltaTable(str(home / "lake" / "embeddings")).to_pyarrow_table()
    assert table.num_rows == 300 and len(table.column("embedding")[0]) == 128 + 256
    # both jobs really ran on the cluster, with executors on both workers
    assert {a["name"] for a in apps} >= {"lookalike-ingest-fashion-mnist", "lookalike-embed"}
