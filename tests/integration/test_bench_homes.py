"""The benchmarks' own homes: an encoder registered in one home and copied into another
embeds the same, and ``index_versions`` publishes two gated versions (what
``bench.serving --synthetic-items`` and ``--million`` serve)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.million import items_table, register_encoder_copy
from bench.synthetic import index_versions, register_stub_encoder


def test_an_encoder_copied_into_a_bench_home_embeds_the_same(settings, tmp_path: Path) -> None:
    from lookalike.config import Settings
    from lookalike.registry.encoders import embed_images, load_predict

    source = register_stub_encoder(settings, 16)
    other = Settings(home=tmp_path / "bench-home")
    copy = register_encoder_copy(other, Path(source.local_dir))
    assert copy.local_dir != source.local_dir
    assert (copy.embedding_size, copy.input_size) == (16, source.input_size)
    photos = list(np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8))
    a, b = (
        embed_images(load_predict(ref.local_dir), photos, input_size=28, channels=1)
        for ref in (source, copy)
    )
    assert np.allclose(a, b, atol=1e-5)

    vectors = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = index_versions(other, copy, vectors, items_table(300), "test")
    assert [v["index_version"] for v in out["versions"]] == ["v000001", "v000002"]
    assert all(v["recall_at_10"] >= 0.99 and Path(v["path"]).is_dir() for v in out["versions"])
