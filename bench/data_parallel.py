"""Benchmark: Horovod data-parallel training, 2 processes against 1, side by side in one run.

    .venv/bin/python -m bench.data_parallel [--epochs 2] [--set K=V ...] [--variants 1,2,2sync]

Trains the default encoder (``convnet``, batch norm) on the same Fashion-MNIST training split
through ``horovod.spark.run`` on local[2] with 1 process, with 2 processes (batch-norm
statistics averaged across ranks after training: the product's path) and, for the choice
between the two ways of keeping batch norm consistent, with 2 processes and Horovod's
SyncBatchNormalization. Every variant sees the same number of images (each of 2 ranks does
half the steps with the learning rate scaled by 2, as the product does); each is evaluated
the same way: the full test split (10k queries) against the training split, exact cosine.
Reports precision@1, mAP@R, the images/second of training inside the ranks and the wall time
including Spark tasks and TensorFlow start-up. On 2 cores 2 processes share the same CPUs,
so no speed-up is expected: the numbers show Horovod's overhead.
Writes bench/results/horovod.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

VARIANTS = {
    "1": {"num_proc": 1, "sync_batch_norm": False},
    "2": {"num_proc": 2, "sync_batch_norm": False},
    "2sync": {"num_proc": 2, "sync_batch_norm": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variants", default="1,2,2sync")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "horovod.json")
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from lookalike.config import get_settings

    settings = get_settings()
    from bench.catalog import catalog_version

    uri, version = catalog_version(settings)
    from lookalike.similarity.config import DataRef, TrainConfig, parse_overrides
    from lookalike.similarity.data import fit_to_catalog, load_split, load_training_items
    from lookalike.similarity.distributed import horovod_run
    from lookalike.similarity.evaluate import retrieval_metrics
    from lookalike.similarity.model import embed, encoder_from_weights
    from lookalike.spark import spark_session
    from lookalike.training.horovod import check_consistent

    cfg = TrainConfig.from_dict({"epochs": args.epochs} | parse_overrides(args.set))
    cfg = fit_to_catalog(cfg, uri, version)
    ref = DataRef(uri, version, {"split": "train"})
    index = load_training_items(cfg, ref)
    queries = load_split(
        settings.catalog_uri,
        version,
        "test",
        input_size=cfg.input_size,
        channels=cfg.channels,
    )
    spark = spark_session("bench-horovod", settings)
    out: dict = {
        "benchmark": "horovod",
        "command": "python -m bench.data_parallel"
        + f" --epochs {args.epochs}"
        + "".join(f" --set {s}" for s in args.set)
        + f" --variants {args.variants}",
        "config": cfg.as_dict(),
        "catalog_version": version,
        "train_items": len(index),
        "queries": len(queries),
        "cpus": os.cpu_count(),
        "variants": {},
    }
    for name in args.variants.split(","):
        spec = VARIANTS[name]
        print(f"[bench] training variant {name}: {spec}", flush=True)
        t0 = time.monotonic()
        results = check_consistent(
            horovod_run(spark, cfg, ref, spec["num_proc"], sync_batch_norm=spec["sync_batch_norm"])
        )
        wall = time.monotonic() - t0
        model = encoder_from_weights(cfg, results[0]["weights"])
        m = retrieval_metrics(embed(model, queries.x), queries.y, embed(model, index.x), index.y)
        images = sum(r["images"] for r in results)
        train_seconds = max(r["train_seconds"] for r in results)
        row = {
            **spec,
            "precision_at_1": m["precision_at_1"],
            "map_at_r": m["map_at_r"],
            "recall_at_5": m["recall_at_5"],
            "images": images,
            "train_seconds": round(train_seconds, 1),
            "images_per_second": round(images / train_seconds, 1),
            "wall_seconds": round(wall, 1),
            "final_loss": round(results[0]["history"]["loss"][-1], 4),
        }
        out["variants"][name] = row
        print(f"[bench] {name}: {json.dumps(row)}", flush=True)
    spark.stop()
    v = out["variants"]
    if "1" in v and "2" in v:
        out["two_vs_one"] = {
            "precision_at_1_diff": round(v["2"]["precision_at_1"] - v["1"]["precision_at_1"], 4),
            "map_at_r_diff": round(v["2"]["map_at_r"] - v["1"]["map_at_r"], 4),
            "images_per_second_ratio": round(
                v["2"]["images_per_second"] / v["1"]["images_per_second"], 3
            ),
            "within_0_01": abs(v["2"]["precision_at_1"] - v["1"]["precision_at_1"]) <= 0.01
            and abs(v["2"]["map_at_r"] - v["1"]["map_at_r"]) <= 0.01,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
