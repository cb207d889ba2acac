"""THE download-once cache of registered model versions under ``LOOKALIKE_HOME/cache``.

``cache/<kind>/<name>-v<version>`` (kinds: ``encoders``, ``bundles``) holds one MLflow model
directory per version. A version is downloaded into a temp dir next to its final place
(unique per process and thread), verified (an ``MLmodel`` file, wherever MLflow put it), and
renamed into place in one atomic step: a half-done download never takes the final name. When
two downloaders race, the first rename wins and the loser discards its copy; a copy already in
place is never deleted under a reader (only a broken one without ``MLmodel`` is replaced).
Downloads name the deployment's MLflow URIs explicitly (the service, a long-lived process,
never sets MLflow's process-wide URIs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lookalike.config import Settings

ENCODERS = "encoders"
BUNDLES = "bundles"


class CacheError(RuntimeError):
    """A downloaded model version is not a model directory."""


def cached_path(settings: Settings, kind: str, name: str, version: str) -> Path:
    """Where version ``version`` of ``name`` lives in the cache (whether or not it is there)."""
    return settings.cache_dir / kind / f"{name}-v{version}"


def _complete(path: Path) -> bool:
    return (path / "MLmodel").is_file()


def _model_root(tmp: Path) -> Path | None:
    """The downloaded model directory: ``tmp`` itself or one level down."""
    if _complete(tmp):
        return tmp
    return next((p.parent for p in tmp.rglob("MLmodel") if p.is_file()), None)


def fetch_model(settings: Settings, kind: str, name: str, version: str) -> Path:
    """The local copy of registered ``name`` version ``version``, downloaded once."""
    import mlflow

    dest = cached_path(settings, kind, name, str(version))
    if _complete(dest):
        return dest
    tag = f"{os.getpid()}-{threading.get_ident()}"
    tmp = dest.with_name(f".{dest.name}.tmp-{tag}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}",
            dst_path=str(tmp),
            tracking_uri=settings.tracking_uri,  # the deployment's, whatever the process set
            registry_uri=settings.tracking_uri,
        )
        root = _model_root(tmp)
        if root is None:
            raise CacheError(f"{name} version {version}: the download holds no MLmodel file")
        for _ in range(2):
            try:
                os.rename(root, dest)  # atomic; refuses a non-empty ``dest``
                break
            except OSError:
                if _complete(dest):  # another process or thread won the race: keep theirs
                    break
                stale = dest.with_name(f".{dest.name}.stale-{tag}")  # broken leftover: replace
                with contextlib.suppress(OSError):
                    os.rename(dest, stale)
                shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not _complete(dest):
        raise CacheError(f"{name} version {version}: could not be placed at {dest}")
    return dest


def load_registered(settings: Settings, name: str, version: str) -> Any:
    """Registered ``name`` version ``version`` from the cache, loaded through its pyfunc (which
    verifies checksums and self-checks); returns its recommender with ``bundle_version`` set.

    Used for both bundles: the similarity one and the shopper model."""
    import mlflow

    from lookalike.registry.moved import alias_moved_modules

    alias_moved_modules()
    dest = fetch_model(settings, BUNDLES, name, version)
    rec = mlflow.pyfunc.load_model(str(dest)).unwrap_python_model().rec
    rec.bundle_version = version
    return rec


def prune(settings: Settings, kind: str, name: str, keep: Iterable[str]) -> list[str]:
    """Delete cached versions of ``name`` other than ``keep``; returns the versions deleted."""
    root = settings.cache_dir / kind
    prefix = f"{name}-v"
    if not root.is_dir():
        return []
    keep = set(keep)
    gone = []
    for d in root.iterdir():
        if d.name.startswith(prefix) and d.name.removeprefix(prefix) not in keep:
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name.removeprefix(prefix))
    return gone
