"""Hyperopt on Spark (SparkTrials) and Horovod on Spark, on a tiny slice. Slow: each Spark
task imports TensorFlow."""

from __future__ import annotations

import pytest

from lookalike.model.config import DataRef, TrainConfig

TINY = {
    "backbone": "seed_cnn",
    "epochs": 1,
    "steps_per_epoch": 6,
    "examples_per_class": 4,
    "augment": False,
    "train_limit": 300,
    "embedding_size": 16,
}


#: One cheap configuration per backbone family. ``convnet`` is the default configuration
#: (batch norm, flips, dropout) with only the cost knobs turned down; a Keras application
#: carries batch norm inside a nested model.
HOROVOD_CASES = {
    "convnet": {"epochs": 1, "steps_per_epoch": 8, "train_limit": 300},
    "seed_cnn": TINY | {"steps_per_epoch": 8},
    "keras:MobileNetV2": TINY | {"backbone": "keras:MobileNetV2", "input_size": 32, "width": 8},
}


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list(HOROVOD_CASES))
def test_horovod_two_ranks_end_with_identical_weights(spark, small_catalog, backbone):
    from lookalike.model.distributed import horovod_run

    cfg = TrainConfig.from_dict(HOROVOD_CASES[backbone])
    assert cfg.backbone == backbone
    ref = DataRef(str(small_catalog.catalog_uri), 1)
    results = sorted(horovod_run(spark, cfg, ref, num_proc=2), key=lambda r: r["rank"])
    assert [r["rank"] for r in results] == [0, 1] and results[0]["size"] == 2
    assert results[0]["shard_items"] == results[1]["shard_items"] == 150  # disjoint halves
    assert results[0]["checksum"] == pytest.approx(results[1]["checksum"], rel=1e-9)
    assert results[0]["weights"] is not None and results[1]["weights"] is None
    # batch norm's moving statistics are the state gradients never touch: averaged at the end
    has_batch_norm = backbone != "seed_cnn"
    assert (results[0]["averaged_variables"] > 0) == has_batch_norm


@pytest.mark.slow
def test_horovod_training_run_is_logged_by_rank_0(spark, small_catalog):
    from mlflow import MlflowClient

    from lookalike.model.pipeline import run_training

    result = run_training(
        TrainConfig.from_dict(TINY),
        settings=small_catalog,
        num_proc=1,
        spark=spark,
        register_model=False,
        eval_limit=100,
    )
    client = MlflowClient(small_catalog.tracking_uri)
    assert client.get_run(result.run_id).data.params["num_proc"] == "1"
    assert len(client.get_metric_history(result.run_id, "train_loss")) == 1  # logged by rank 0
    assert 0.0 < result.metrics["precision_at_1"] <= 1.0


@pytest.mark.slow
def test_hyperopt_two_trials_on_spark(spark, small_catalog):
    from mlflow import MlflowClient

    from lookalike.model.tune import run_tuning

    out = run_tuning(
        TrainConfig.from_dict(TINY), trials=2, parallelism=2, settings=small_catalog, spark=spark
    )
    assert out.trials_ok == 2 and 0.0 < out.best_val_map_at_r <= 1.0
    assert set(out.best_params) == {
        "learning_rate",
        "embedding_size",
        "examples_per_class",
        "epochs",
        "width",
    }
    client = MlflowClient(small_catalog.tracking_uri)
    parent = client.get_run(out.parent_run_id)
    assert parent.data.metrics["best_val_map_at_r"] == pytest.approx(out.best_val_map_at_r)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{out.parent_run_id}'",
    )
    assert len(children) == 2 and all("val_map_at_r" in c.data.metrics for c in children)


@pytest.mark.slow
def test_train_job_through_spark_submit_with_horovod(small_catalog, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.builders import REPO

    bin_dir = Path(sys.executable).parent
    out = tmp_path / "train.json"
    env = os.environ | {
        "LOOKALIKE_HOME": str(small_catalog.home),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    # the default configuration (backbone convnet, batch norm), only fewer steps on a slice
    sets = [f"{k}={json.dumps(v)}" for k, v in HOROVOD_CASES["convnet"].items()]
    args = [
        str(bin_dir / "spark-submit"),
        "--master",
        "local[2]",
        str(REPO / "spark_jobs" / "train.py"),
        "--horovod",
        "2",
        "--eval-limit",
        "100",
        "--summary-file",
        str(out),
    ]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = json.loads(out.read_text())
    assert result["model_version"] and result["catalog_version"] == 1
    assert 0.0 < result["metrics"]["precision_at_1"] <= 1.0
