"""The quality benchmark's bookkeeping: the reference trained in the same run gives the
time ratio, the targets, and the pinned reference is a valid configuration."""

from __future__ import annotations

import types

import lookalike  # noqa: F401  (legacy Keras switch before TrainConfig's imports)
from bench import quality
from lookalike.similarity.config import TrainConfig


def _run(p1: float, seconds: float) -> dict:
    metrics = {
        "precision_at_1": p1,
        "recall_at_5": 0.98,
        "recall_at_10": 0.99,
        "map_at_r": 0.8,
        "per_category_precision_at_1": {},
    }
    base = {"precision_at_1": 0.8, "recall_at_5": 0.9, "map_at_r": 0.4}
    return {
        "config": {},
        "metrics": metrics,
        "baseline": base,
        "train_seconds": seconds,
        "mlflow_run_id": "r",
    }


def test_reference_is_the_pinned_default_and_valid():
    ref = TrainConfig.from_dict(quality.REFERENCE)
    assert ref.backbone == "convnet" and ref.precision == "float32"
    assert ref.classes_per_batch * ref.examples_per_class == 100  # batches of 100


def test_time_ratio_and_target_come_from_the_same_run():
    cfg = TrainConfig(epochs=10)
    args = types.SimpleNamespace()
    fast = quality._report(args, cfg, 1, _run(0.951, 300.0), _run(0.933, 400.0))
    assert fast["train_time_ratio"] == 0.75 and fast["target"]["met"] is True
    assert fast["reference"]["precision_at_1"] == 0.933
    assert fast["reference"]["train_seconds"] == 400.0
    slow = quality._report(args, cfg, 1, _run(0.96, 500.0), _run(0.933, 400.0))
    assert slow["train_time_ratio"] == 1.25 and slow["target"]["met"] is False
    weak = quality._report(args, cfg, 1, _run(0.94, 300.0), _run(0.933, 400.0))
    assert weak["target"]["met"] is False
    alone = quality._report(args, cfg, 1, _run(0.96, 300.0), None)
    assert "reference" not in alone and alone["target"]["met"] is False


def test_unseen_hard_must_beat_pixels_on_both_metrics():
    section = {
        "encoder": {"precision_at_1": 0.7, "map_at_r": 0.4},
        "raw_pixels": {"precision_at_1": 0.72, "map_at_r": 0.3},
    }
    assert quality._beats(section) is False
    section["encoder"]["precision_at_1"] = 0.75
    assert quality._beats(section) is True
