"""``lookalike-shopper-model`` in MLflow: the pyfunc, registration as ``challenger``, and
versions by alias or number (the promotion is ``lookalike.shopper.promotion``).

``ShopperModel`` stays in this module: a registered version pickles its pyfunc class by module
path, so moving it would leave every registered version unloadable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lookalike.config import Settings
from lookalike.registry.aliases import CHALLENGER
from lookalike.shopper.bundle import ShopperRecommender

DEFAULT_K = 10
OUTPUT_COLUMNS = ["query", "rank", "user_id", "item_id", "category", "score", "mode"]

try:  # keep this module importable without mlflow for light unit tests
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover
    _PythonModel = object  # type: ignore[assignment,misc]


class ShopperModel(_PythonModel):  # type: ignore[misc,valid-type]
    """pyfunc: rows with ``user_id`` -> that shopper's top-k items (fallback when unknown)."""

    def load_context(self, context: Any) -> None:
        """Load (and verify) the bundle from the model's artifacts once, when MLflow loads it."""
        self.rec = ShopperRecommender(Path(context.artifacts["bundle"]))

    # ``model_input`` hinted as a DataFrame only: MLflow infers no schema from it and, hinted,
    # no longer warns on every import of the class
    def predict(self, context, model_input: pd.DataFrame, params=None):
        """Rows with ``user_id`` -> that shopper's top-k items (``params``: ``k``,
        ``exclude_seen``, ``blend``), one output row per item."""
        params = params or {}
        k = int(params.get("k", DEFAULT_K))
        exclude_seen = bool(params.get("exclude_seen", True))
        blend = float(params.get("blend", 0.0))
        rows = []
        for q, user in enumerate(pd.DataFrame(model_input)["user_id"].astype(str).tolist()):
            hits, mode = self.rec.recommend(user, k, exclude_seen=exclude_seen, blend=blend)
            for rank, h in enumerate(hits, start=1):
                rows.append([q, rank, user, h.item_id, h.category, h.score, mode])
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "user_id")]),
        outputs=Schema(
            [
                ColSpec("long", "query"),
                ColSpec("long", "rank"),
                ColSpec("string", "user_id"),
                ColSpec("string", "item_id"),
                ColSpec("long", "category"),
                ColSpec("double", "score"),
                ColSpec("string", "mode"),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("k", "long", DEFAULT_K),
                ParamSpec("exclude_seen", "boolean", True),
                ParamSpec("blend", "double", 0.0),
            ]
        ),
    )


def log_and_register(settings: Settings, bundle_dir: Path, tags: dict[str, str]) -> str:
    """Inside an active run: load + check the bundle, log it, register it as ``challenger``."""
    import mlflow
    import pandas as pd

    from lookalike.registry.versions import register

    rec = ShopperRecommender(bundle_dir)  # refuse a broken bundle before logging it
    example = pd.DataFrame({"user_id": [rec.user_ids[0] if rec.user_ids else "someone"]})
    info = mlflow.pyfunc.log_model(
        name="shopper",
        python_model=ShopperModel(),
        artifacts={"bundle": str(bundle_dir)},
        signature=_signature(),
        input_example=example,
        pip_requirements=[],  # the deployment's own environment (requirements.lock)
    )
    return register(settings, info.model_uri, settings.shopper_model_name, CHALLENGER, tags)


def _client(settings: Settings) -> Any:
    from lookalike.registry.mlflow_setup import client

    return client(settings, settings.shopper_experiment)


def version_by(settings: Settings, ref: str) -> Any | None:
    """A version of the shopper model by alias or number, or None."""
    from lookalike.registry.versions import find_version

    return find_version(settings.shopper_model_name, ref, client=_client(settings))


def load_version(settings: Settings, version: str) -> ShopperRecommender:
    """Download version ``version`` (once, into the cache) and load its bundle."""
    from lookalike.registry.cache import load_registered

    rec: ShopperRecommender = load_registered(settings, settings.shopper_model_name, version)
    return rec
