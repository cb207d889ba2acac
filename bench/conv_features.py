"""Benchmark: how much of the convolution block should the saved encoder output?

    .venv/bin/python -m bench.conv_features [--set KEY=VALUE ...] [--weights 0,0.25,0.5,0.75,1]

``conv_features_weight`` (lookalike.similarity.model.with_conv_features) appends w x the unit,
randomly projected last convolution block to the unit embedding; training never sees it, so
one trained model answers for every w. This trains the configuration (the default unless
``--set``; its own ``conv_features_weight`` is ignored) twice, side by side in one run:
1. on all categories, then searches the 10,000 test photos against the 60,000 training ones
   (seen categories, exact cosine) at each weight;
2. without Shirt, Pullover and Coat (6, 2, 4), then searches those three only (3,000 against
   18,000: unseen hard categories) at each weight, beside raw pixels.
Reports, per weight, p@1 and mAP@R on both, and the smallest weight whose unseen-hard
numbers beat raw pixels on both counts with its cost on the seen ones.
Writes bench/results/conv_features.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KEYS = ("precision_at_1", "recall_at_5", "map_at_r")
HARD = (6, 2, 4)


def _parts(model: Any, cfg: Any, x: Any) -> tuple[Any, Any]:
    """The unit embedding and the unit projected convolution block of ``x``, from the
    library's own wrapper at weight 1 (checked against its output)."""
    import numpy as np
    import tensorflow as tf

    from lookalike.similarity.evaluate import l2_normalise
    from lookalike.similarity.model import embed, with_conv_features

    wrapped = with_conv_features(model, cfg.replace(conv_features_weight=1.0))
    sub = tf.keras.Model(
        wrapped.input,
        [wrapped.get_layer("embedding").output, wrapped.get_layer("conv_unit").output],
    )
    e, c = sub.predict(x, batch_size=512, verbose=0)
    check = embed(wrapped, x[:256])
    assert np.allclose(check, l2_normalise(np.hstack([e[:256], c[:256]])), atol=1e-4)
    return e, c


def _sweep(weights: list[float], q: tuple, i: tuple, yq: Any, yi: Any) -> dict[str, dict]:
    """Metrics of [e, w x c] (unit length) for each weight w."""
    import numpy as np

    from lookalike.similarity.evaluate import l2_normalise, retrieval_metrics

    out = {}
    for w in weights:
        vq = l2_normalise(np.hstack([q[0], w * q[1]]))
        vi = l2_normalise(np.hstack([i[0], w * i[1]]))
        m = retrieval_metrics(vq, yq, vi, yi)
        out[str(w)] = {k: round(float(m[k]), 4) for k in KEYS}
        print(f"[bench] weight {w}: {out[str(w)]}", flush=True)
    return out


def _trained(cfg: Any, uri: str, version: int, held: tuple[int, ...]) -> tuple[Any, float]:
    from lookalike.similarity.data import load_split
    from lookalike.similarity.model import train_encoder

    size = {"input_size": cfg.input_size, "channels": cfg.channels}
    train = load_split(uri, version, "train", exclude_categories=list(held), **size)
    t = time.monotonic()
    model, _ = train_encoder(cfg.replace(exclude_categories=held), train)
    return model, round(time.monotonic() - t, 1)


def main() -> None:
    """Train on all categories and without the hard three; sweep the weight on both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "conv_features.json"
    )
    args = parser.parse_args()

    from bench.catalog import catalog_version
    from lookalike.config import get_settings
    from lookalike.similarity.config import TrainConfig, parse_overrides
    from lookalike.similarity.data import fit_to_catalog, load_split
    from lookalike.similarity.evaluate import raw_pixel_embeddings, retrieval_metrics

    uri, version = catalog_version(get_settings())
    # the network alone: this bench adds the convolution features at each weight itself
    values = parse_overrides(args.set) | {"conv_features_weight": 0.0, "flip_average": False}
    cfg = fit_to_catalog(TrainConfig.from_dict(values), uri, version)
    weights = [float(w) for w in args.weights.split(",")]
    size = {"input_size": cfg.input_size, "channels": cfg.channels}

    seen_model, seen_seconds = _trained(cfg, uri, version, ())
    index = load_split(uri, version, "train", **size)
    test = load_split(uri, version, "test", **size)
    seen_sizes = {"queries": len(test), "index_size": len(index)}
    seen = _sweep(
        weights, _parts(seen_model, cfg, test.x), _parts(seen_model, cfg, index.x), test.y, index.y
    )

    hard_model, hard_seconds = _trained(cfg, uri, version, HARD)
    index = load_split(uri, version, "train", only_categories=list(HARD), **size)
    test = load_split(uri, version, "test", only_categories=list(HARD), **size)
    unseen = _sweep(
        weights, _parts(hard_model, cfg, test.x), _parts(hard_model, cfg, index.x), test.y, index.y
    )
    m = retrieval_metrics(
        raw_pixel_embeddings(test.x), test.y, raw_pixel_embeddings(index.x), index.y
    )
    pixels = {k: round(float(m[k]), 4) for k in KEYS}
    beats = [
        w
        for w in weights
        if all(unseen[str(w)][k] > pixels[k] for k in ("precision_at_1", "map_at_r"))
    ]
    out = {
        "benchmark": "conv_features",
        "command": "python -m bench.conv_features " + " ".join(sys.argv[1:]),
        "config": cfg.as_dict(),
        "conv_features_size": cfg.conv_features_size,
        "train_seconds": {"seen": seen_seconds, "unseen_hard": hard_seconds},
        "seen": seen_sizes | {"by_weight": seen},
        "unseen_hard": {
            "categories": list(HARD),
            "queries": len(test),
            "index_size": len(index),
            "raw_pixels": pixels,
            "by_weight": unseen,
        },
        "smallest_weight_beating_pixels_on_unseen_hard": min(beats) if beats else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
