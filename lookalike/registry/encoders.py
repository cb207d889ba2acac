"""A registered encoder version as a local, loaded-once embedding function.

The driver resolves an alias (``champion``) or a number to ONE version and copies it into
``LOOKALIKE_HOME/cache/encoders`` once; the bundle loads that copy, and executors on other
hosts (which share no disk with the driver) fetch the same version into their own cache. Every
consumer (catalogue embedding, incremental re-index, the served bundle) therefore embeds with
exactly the recorded version, and the same image bytes give the same vector everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.images import to_model_input
from lookalike.registry.aliases import CHAMPION
from lookalike.registry.versions import VersionNotFound

Predict = Callable[[np.ndarray], np.ndarray]


class EncoderNotFound(VersionNotFound):
    """No encoder version answers to the alias or number asked for."""


@dataclass(frozen=True)
class EncoderRef:
    """A registered encoder version downloaded to the local cache, with the input shape and
    embedding size its metadata records: all an embedding job needs."""

    name: str
    version: str
    input_size: int
    channels: int
    embedding_size: int
    local_dir: str  # the pyfunc model directory (MLmodel + artifacts)

    def to_dict(self) -> dict[str, Any]:
        """The reference as JSON-ready values (summaries, manifests)."""
        return asdict(self)


def _metadata(local_dir: Path) -> dict[str, Any]:
    from mlflow.models import Model

    return Model.load(str(local_dir)).metadata or {}


def fetch_encoder(settings: Settings, model: str = CHAMPION) -> EncoderRef:
    """Resolve ``model`` (alias or version number) and make sure a local copy exists."""
    from lookalike.registry import cache, mlflow_setup
    from lookalike.registry.versions import get_version

    mlflow_setup.setup_mlflow(settings)
    name = settings.encoder_model_name
    try:
        mv = get_version(name, str(model), client=mlflow_setup.registry_client(settings))
    except VersionNotFound as e:
        raise EncoderNotFound(f"encoder {name!r} has no version or alias {model!r}") from e
    version = str(mv.version)
    dest = cache.fetch_model(settings, cache.ENCODERS, name, version)
    meta = _metadata(dest)
    return EncoderRef(
        name=name,
        version=version,
        input_size=int(meta["input_size"]),
        channels=int(meta["channels"]),
        embedding_size=int(meta["embedding_size"]),
        local_dir=str(dest),
    )


def model_dir(ref: EncoderRef) -> str:
    """The encoder's model directory on this host: the driver's copy when this host sees it,
    else this host's own copy of the same version (an executor on another machine)."""
    if ref.local_dir in _LOADED or (Path(ref.local_dir) / "MLmodel").is_file():
        return ref.local_dir
    from lookalike.config import get_settings
    from lookalike.registry import cache, mlflow_setup

    settings = get_settings()
    mlflow_setup.setup_mlflow(settings)
    return str(cache.fetch_model(settings, cache.ENCODERS, ref.name, ref.version))


_LOADED: dict[str, Predict] = {}
_LOCK = threading.Lock()


def load_predict(local_dir: str, *, cache: bool = True) -> Predict:
    """The encoder's embedding function, loaded once per process (per Spark Python worker).
    ``cache=False`` for long-lived holders (the service) that swap versions over time."""
    from lookalike.registry.moved import alias_moved_modules

    alias_moved_modules()
    if not cache:
        import mlflow

        return mlflow.pyfunc.load_model(local_dir).predict
    with _LOCK:
        if local_dir not in _LOADED:
            import mlflow

            # no requirements check: it scans every installed distribution (~2.5 s) in each
            # worker process; the long-lived service's load above still warns
            _LOADED[local_dir] = mlflow.pyfunc.load_model(local_dir, suppress_warnings=True).predict
        return _LOADED[local_dir]


def embed_images(
    predict: Predict,
    images: Sequence[bytes | np.ndarray],
    *,
    input_size: int,
    channels: int,
    batch_size: int = 512,
) -> np.ndarray:
    """float32 (n, d) L2-normalised embeddings of encoded images (PNG/JPEG bytes) or arrays,
    preprocessed exactly as in training (``to_model_input``)."""
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = np.stack([to_model_input(img, input_size, channels) for img in chunk])
        out.append(np.asarray(predict(x), dtype=np.float32))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)
