"""MLflow logging of encoder training: dataset lineage, per-epoch metrics, the encoder as a
pyfunc model.

The registered model ``lookalike-encoder`` holds pyfunc versions that map uint8 pixels
``(n, size, size, channels)`` to L2-normalised embeddings; a new version gets the alias
``challenger``; promotion moves ``champion``. Set-up and registration are the registry's
(``lookalike.registry``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.similarity.config import DataRef, TrainConfig


def log_dataset(ref: DataRef, context: str = "training") -> None:
    """The catalogue table and its Delta version, as the run's dataset input (lineage)."""
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    source = DeltaDatasetSource(path=ref.table_path, delta_table_version=ref.version)
    dataset = MetaDataset(source=source, name=f"catalog@v{ref.version}", digest=f"v{ref.version}")
    mlflow.log_input(dataset, context=context, tags={k: str(v) for k, v in ref.extra.items()})
    mlflow.set_tags({"catalog.path": ref.table_path, "catalog.version": str(ref.version)})


def epoch_logger() -> Any:
    """Keras callback: every epoch's logs as MLflow metrics (step = epoch)."""
    import mlflow
    import tensorflow as tf

    class _EpochLogger(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            mlflow.log_metrics(
                {f"train_{k}": float(v) for k, v in (logs or {}).items()}, step=epoch
            )

    return _EpochLogger()


try:  # mlflow is in the lock, but keep this module importable for light unit tests
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover
    _PythonModel = object  # type: ignore[assignment,misc]


class EncoderModel(_PythonModel):  # type: ignore[misc,valid-type]
    """pyfunc: uint8 pixels (n, size, size, channels) -> float32 embeddings (n, dim)."""

    def load_context(self, context: Any) -> None:
        """Load the saved Keras encoder and its config once, when MLflow loads the model."""
        import tensorflow as tf

        from lookalike.similarity.tfsim import import_tfsim

        import_tfsim()  # registers MetricEmbedding for loading

        self.config = json.loads(Path(context.artifacts["config"]).read_text())
        self.model = tf.keras.models.load_model(context.artifacts["encoder"], compile=False)

    # ``model_input`` hinted as an array only: MLflow infers no schema from it (a list hint
    # would become an input schema) and, hinted, no longer warns on every import of the class
    # (Spark's Python workers included, whose stderr is the command's)
    def predict(self, context, model_input: np.ndarray, params=None):
        """uint8 pixels (n, size, size[, channels]) -> unit-length float32 embeddings."""
        from lookalike.similarity.model import embed

        if isinstance(model_input, dict):  # named tensor input ({"pixels": array})
            model_input = next(iter(model_input.values()))
        x = np.asarray(model_input, dtype=np.uint8)
        if x.ndim == 3:
            x = x[..., None]
        return embed(self.model, x)


def log_encoder(model: Any, cfg: TrainConfig, example: np.ndarray) -> Any:
    """Log the trained encoder as a pyfunc model with signature and input example."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from lookalike.similarity.model import as_plain_keras

    with tempfile.TemporaryDirectory() as tmp:
        encoder_path = Path(tmp) / "encoder.keras"
        as_plain_keras(model).save(encoder_path)
        config_path = Path(tmp) / "train_config.json"
        config_path.write_text(json.dumps(cfg.as_dict(), indent=2))
        shape = (-1, cfg.input_size, cfg.input_size, cfg.channels)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.uint8), shape, name="pixels")]),
            outputs=Schema(
                [TensorSpec(np.dtype(np.float32), (-1, cfg.output_size), name="embedding")]
            ),
        )
        return mlflow.pyfunc.log_model(
            name="encoder",
            python_model=EncoderModel(),
            artifacts={"encoder": str(encoder_path), "config": str(config_path)},
            signature=signature,
            input_example=example.astype(np.uint8),
            metadata={
                "embedding_size": cfg.output_size,  # what the index stores
                "input_size": cfg.input_size,
                "channels": cfg.channels,
                "backbone": cfg.backbone,
            },
            pip_requirements=[],  # the deployment's own environment (requirements.lock)
        )
