"""Benchmark: which layer of the encoder ranks UNSEEN hard categories best?

    .venv/bin/python -m bench.unseen_layers [--set KEY=VALUE ...] [--held-out 6,2,4]

Trains the configuration (the default unless ``--set``) without the held-out categories
(Shirt, Pullover, Coat), then searches their test photos against their training photos
(exact cosine) with the features of each layer of the ``convnet`` encoder: the last
convolution block (flattened), the dense layer, the embedding; beside raw pixels and the
embedding concatenated with the convolution features. Why: bench/quality.py measured the
embedding losing to raw pixels on precision@1 there; this says where the information is lost.
Writes bench/results/unseen_layers.json.
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


def _layer_features(model: Any, x: Any) -> dict[str, Any]:
    """Each named layer's output for ``x``, flattened (float32)."""
    import tensorflow as tf

    flatten = next(la for la in model.layers if isinstance(la, tf.keras.layers.Flatten))
    dense = [la for la in model.layers if type(la) is tf.keras.layers.Dense][-1]
    outputs = {"conv_block_flattened": flatten.output, "dense": dense.output}
    sub = tf.keras.Model(model.input, outputs)
    feats = sub.predict(x, batch_size=512, verbose=0)
    return {k: v.reshape(len(x), -1) for k, v in feats.items()}


def main() -> None:
    """Train without the held-out categories; rank them with each layer's features."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--held-out", default="6,2,4")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "unseen_layers.json"
    )
    args = parser.parse_args()

    import numpy as np

    from bench.catalog import catalog_version
    from lookalike.config import get_settings
    from lookalike.similarity.config import TrainConfig, parse_overrides
    from lookalike.similarity.data import fit_to_catalog, load_split
    from lookalike.similarity.evaluate import l2_normalise, raw_pixel_embeddings, retrieval_metrics
    from lookalike.similarity.model import embed, train_encoder

    settings = get_settings()
    uri, version = catalog_version(settings)
    held = tuple(int(c) for c in args.held_out.split(","))
    cfg = fit_to_catalog(
        # the embedding alone (conv features off): each layer's features are compared here
        TrainConfig.from_dict(
            parse_overrides(args.set)
            | {"exclude_categories": held, "conv_features_weight": 0, "flip_average": False}
        ),
        uri,
        version,
    )
    if cfg.backbone != "convnet":
        raise SystemExit("backbone: this benchmark reads the convnet backbone's layers")
    size = {"input_size": cfg.input_size, "channels": cfg.channels}
    train = load_split(uri, version, "train", exclude_categories=list(held), **size)
    index = load_split(uri, version, "train", only_categories=list(held), **size)
    test = load_split(uri, version, "test", only_categories=list(held), **size)
    t = time.monotonic()
    model, _ = train_encoder(cfg, train)
    train_seconds = time.monotonic() - t

    def score(q: Any, i: Any) -> dict[str, float]:
        m = retrieval_metrics(q, test.y, i, index.y)
        return {k: m[k] for k in KEYS}

    fq, fi = _layer_features(model, test.x), _layer_features(model, index.x)
    eq, ei = embed(model, test.x), embed(model, index.x)
    conv_q, conv_i = (
        l2_normalise(fq["conv_block_flattened"]),
        l2_normalise(fi["conv_block_flattened"]),
    )
    features = {
        "raw_pixels": score(raw_pixel_embeddings(test.x), raw_pixel_embeddings(index.x)),
        "conv_block_flattened": score(conv_q, conv_i),
        "dense": score(fq["dense"], fi["dense"]),
        "embedding": score(eq, ei),
        "embedding_plus_conv_block": score(np.hstack([eq, conv_q]), np.hstack([ei, conv_i])),
    }
    out = {
        "command": "python -m bench.unseen_layers " + " ".join(sys.argv[1:]),
        "held_out": list(held),
        "config": cfg.as_dict(),
        "train_seconds": round(train_seconds, 1),
        "queries": len(test),
        "index_size": len(index),
        "features": features,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
