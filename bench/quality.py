"""Benchmark: retrieval quality of the default encoder trained on all 60k training images.

    .venv/bin/python bench/quality.py [--set epochs=10 ...] [--skip-unseen]

Trains through the same pipeline as `lookalike train` (tracked in MLflow under the bench's
LOOKALIKE_HOME, not registered), evaluates test (10k queries) against train (60k index) by
exact cosine search, records a learning curve (p@1 of 2,000 test queries every 2 epochs;
its cost is excluded from train_seconds), then repeats with 3 categories held out of training
and reports metrics on those unseen categories beside a raw-pixel baseline.
Writes bench/results/quality.json. Target: precision@1 >= 0.93 within 20 minutes of training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-unseen", action="store_true")
    parser.add_argument("--unseen", default="7,8,9", help="categories held out (default 7,8,9)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality.json")
    args = parser.parse_args()

    from lookalike.cli.logs import configure_logging
    from lookalike.config import get_settings

    configure_logging()  # the library's progress lines on stderr, as under `lookalike`
    settings = get_settings()
    from lookalike.catalog.table import is_table

    if not is_table(settings.catalog_uri):
        print("[bench] no catalogue yet: ingesting Fashion-MNIST", flush=True)
        subprocess.run(
            [str(Path(sys.executable).parent / "lookalike"), "ingest", "fashion-mnist"], check=True
        )

    import numpy as np
    import tensorflow as tf

    from lookalike.model.config import TrainConfig, parse_overrides
    from lookalike.model.data import fit_to_catalogue, load_split
    from lookalike.model.encoder import embed
    from lookalike.model.evaluate import l2_normalise, retrieval_metrics
    from lookalike.model.pipeline import run_training

    cfg = TrainConfig.from_dict(parse_overrides(args.set))

    from lookalike.catalog.table import resolve_version

    version = resolve_version(settings.catalog_uri)
    cfg = fit_to_catalogue(cfg, settings.catalog_uri, version)
    probe_q = load_split(
        settings.catalog_uri,
        version,
        "test",
        input_size=cfg.input_size,
        channels=cfg.channels,
        limit=2000,
    )
    probe_i = load_split(
        settings.catalog_uri, version, "train", input_size=cfg.input_size, channels=cfg.channels
    )

    class LearningCurve(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[dict] = []
            self.flip_tta: dict = {}
            self.eval_seconds = 0.0
            self.t0 = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if (epoch + 1) % 2 and epoch + 1 != cfg.epochs:
                return
            t = time.monotonic()
            m = retrieval_metrics(
                embed(self.model, probe_q.x), probe_q.y, embed(self.model, probe_i.x), probe_i.y
            )
            if epoch + 1 == cfg.epochs:  # does averaging with the mirrored image help?
                flip = np.ascontiguousarray(probe_q.x[:, :, ::-1])
                tta = l2_normalise(embed(self.model, probe_q.x) + embed(self.model, flip))
                iflip = np.ascontiguousarray(probe_i.x[:, :, ::-1])
                itta = l2_normalise(embed(self.model, probe_i.x) + embed(self.model, iflip))
                self.flip_tta = retrieval_metrics(tta, probe_q.y, itta, probe_i.y)
            self.eval_seconds += time.monotonic() - t
            point = {
                "epoch": epoch + 1,
                "loss": round(float((logs or {}).get("loss", 0)), 4),
                "precision_at_1_2k": m["precision_at_1"],
                "map_at_r_2k": m["map_at_r"],
                "train_seconds_so_far": round(time.monotonic() - self.t0 - self.eval_seconds, 1),
            }
            self.points.append(point)
            print(f"[bench] {json.dumps(point)}", flush=True)

    curve = LearningCurve()
    print(f"[bench] training {cfg.as_dict()}", flush=True)
    result = run_training(
        cfg,
        settings=settings,
        catalog_version=version,
        register_model=False,
        run_name="bench-quality",
        callbacks=[curve],
    )
    train_seconds = round(result.train_seconds - curve.eval_seconds, 1)
    out = {
        "benchmark": "quality",
        "command": "python bench/quality.py"
        + "".join(f" --set {s}" for s in args.set)
        + (" --skip-unseen" if args.skip_unseen else ""),
        "config": cfg.as_dict(),
        "catalog_version": version,
        "precision_at_1": result.metrics["precision_at_1"],
        "recall_at_5": result.metrics["recall_at_5"],
        "recall_at_10": result.metrics["recall_at_10"],
        "map_at_r": result.metrics["map_at_r"],
        "per_category_precision_at_1": result.metrics["per_category_precision_at_1"],
        "raw_pixel_baseline": {
            k: result.baseline[k] for k in ("precision_at_1", "recall_at_5", "map_at_r")
        },
        "train_seconds": train_seconds,
        "epochs": cfg.epochs,
        "learning_curve": curve.points,
        "flip_tta_2k": {
            k: curve.flip_tta.get(k) for k in ("precision_at_1", "map_at_r", "recall_at_5")
        },
        "target": {
            "precision_at_1": 0.93,
            "max_train_seconds": 1200,
            "met": result.metrics["precision_at_1"] >= 0.93 and train_seconds <= 1200,
        },
        "mlflow_run_id": result.run_id,
        "cpus": os.cpu_count(),
    }
    print(
        f"[bench] p@1 {out['precision_at_1']} mAP@R {out['map_at_r']} in {train_seconds} s",
        flush=True,
    )
    if not args.skip_unseen:
        unseen_cats = tuple(int(c) for c in args.unseen.split(","))
        u = run_training(
            cfg.replace(exclude_categories=unseen_cats),
            settings=settings,
            catalog_version=version,
            register_model=False,
            run_name="bench-quality-unseen",
        )
        out["unseen"] = {
            "categories": list(unseen_cats),
            "model": {
                k: u.unseen["model"][k] for k in ("precision_at_1", "recall_at_5", "map_at_r")
            },
            "raw_pixel_baseline": {
                k: u.unseen["raw_pixels"][k] for k in ("precision_at_1", "recall_at_5", "map_at_r")
            },
            "seen_categories_model": {k: u.metrics[k] for k in ("precision_at_1", "map_at_r")},
            "mlflow_run_id": u.run_id,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
