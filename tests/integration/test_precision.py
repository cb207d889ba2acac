"""Mixed precision training, forced on this CPU (``mixed_bfloat16`` runs everywhere, only
slower without native bfloat16): it trains, and what it returns is a float32 model with the
trained weights, so saving, indexing and serving are unchanged."""

import numpy as np

from lookalike.similarity.config import TrainConfig
from lookalike.similarity.data import ImageSet


def test_mixed_bfloat16_training_returns_a_float32_encoder():
    import tensorflow as tf

    from lookalike.similarity import model as enc

    rng = np.random.default_rng(0)
    images = ImageSet(
        np.asarray([f"i{i}" for i in range(60)]),
        rng.integers(0, 256, size=(60, 28, 28, 1), dtype=np.uint8),
        np.repeat(np.arange(3, dtype=np.int32), 20),
        {0: "a", 1: "b", 2: "c"},
    )
    cfg = TrainConfig(
        backbone="convnet",  # the default backbone: batch norm under the policy too
        precision="mixed_bfloat16",
        width=8,
        embedding_size=16,
        epochs=1,
        steps_per_epoch=3,
        classes_per_batch=3,
        examples_per_class=4,
    )
    seen: set[str] = set()

    class ComputeDtypes(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seen.update(layer.compute_dtype for layer in self.model.layers if layer.weights)

    model, history = enc.train_encoder(cfg, images, callbacks=[ComputeDtypes()])
    assert seen == {"bfloat16", "float32"}  # convolutions in bfloat16, the embedding float32
    assert np.isfinite(history["loss"]).all()
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    vectors = enc.embed(model, images.x[:8])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
