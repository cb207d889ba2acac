"""Horovod on Spark, on a tiny slice, for each backbone family. Slow: each Spark task imports
TensorFlow. Hyperopt on SparkTrials, ``spark_jobs/train.py --horovod`` and rank 0's MLflow
logging run at their defaults in the weekly DAG's test (``tests/dags/test_dags_e2e.py``)."""

from __future__ import annotations

import pytest

from lookalike.similarity.config import DataRef, TrainConfig

TINY = {
    "backbone": "seed_cnn",
    "epochs": 1,
    "steps_per_epoch": 6,
    "examples_per_class": 4,
    "augment": False,
    "train_limit": 300,
    "embedding_size": 16,
}


#: One cheap configuration per backbone family with batch norm. ``convnet`` is the default
#: configuration (batch norm, flips, dropout) with only the cost knobs turned down; a Keras
#: application carries batch norm inside a nested model. ``seed_cnn`` (no batch norm, nothing
#: to average) is checked without Horovod in ``test_model``.
HOROVOD_CASES = {
    "convnet": {"epochs": 1, "steps_per_epoch": 8, "train_limit": 300},
    "keras:MobileNetV2": TINY | {"backbone": "keras:MobileNetV2", "input_size": 32, "width": 8},
}


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list(HOROVOD_CASES))
def test_horovod_two_ranks_end_with_identical_weights(spark, small_catalog, backbone):
    from lookalike.similarity.distributed import horovod_run
    from lookalike.similarity.model import encoder_from_weights

    cfg = TrainConfig.from_dict(HOROVOD_CASES[backbone])
    assert cfg.backbone == backbone
    ref = DataRef(str(small_catalog.catalog_uri), 1)
    results = sorted(horovod_run(spark, cfg, ref, num_proc=2), key=lambda r: r["rank"])
    assert [r["rank"] for r in results] == [0, 1] and results[0]["size"] == 2
    assert results[0]["shard_items"] == results[1]["shard_items"] == 150  # disjoint halves
    assert results[0]["checksum"] == pytest.approx(results[1]["checksum"], rel=1e-9)
    assert results[0]["weights"] is not None and results[1]["weights"] is None
    # batch norm's moving statistics are the state gradients never touch: averaged at the end
    assert results[0]["averaged_variables"] > 0
    # the driver rebuilds rank 0's model in the same layout (lookalike.similarity.training),
    # the conv features' fixed projection included (on by default)
    size = {"input_size": cfg.input_size or 28, "channels": cfg.channels or 1}
    encoder_from_weights(cfg.replace(**size), results[0]["weights"])
