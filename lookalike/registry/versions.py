"""Model versions by alias or number: ONE lookup for every caller (encoder, bundle, shopper
model, the service's alias watcher), and registration of a new version under an alias."""

from __future__ import annotations

from typing import Any

from lookalike.config import Settings
from lookalike.registry.aliases import CHALLENGER


class VersionNotFound(LookupError):
    """No version of the model answers to the alias or number asked for."""


#: MLflow error codes meaning "nothing answers to that reference": an unknown model or version
#: (RESOURCE_DOES_NOT_EXIST), an unknown or malformed alias (INVALID_PARAMETER_VALUE).
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def _is_not_found(e: Exception) -> bool:
    code = str(getattr(e, "error_code", ""))
    return any(c in code for c in _NOT_FOUND) or "not found" in str(e).lower()


def get_version(name: str, ref: str, *, client: Any) -> Any:
    """The ``ModelVersion`` of ``name`` that ``ref`` names: a version number (``"3"``) or an
    alias (``"champion"``). Raises ``VersionNotFound`` when none does; any other registry
    failure (unreachable store...) propagates as MLflow raised it. ``client`` is required: an
    ``MlflowClient`` bound to the deployment's URIs (``mlflow_setup.registry_client``), never
    whatever store the process happens to point at."""
    from mlflow.exceptions import MlflowException

    ref = str(ref)
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as e:
        if _is_not_found(e):
            raise VersionNotFound(f"{name!r} has no version or alias {ref!r}") from e
        raise


def find_version(name: str, ref: str, *, client: Any) -> Any | None:
    """``get_version``, or None when no version answers to ``ref``."""
    try:
        return get_version(name, ref, client=client)
    except VersionNotFound:
        return None


def register(
    settings: Settings,
    model_uri: str,
    name: str,
    alias: str = CHALLENGER,
    tags: dict[str, str] | None = None,
) -> str:
    """Register a logged model in the deployment's registry and point ``alias`` at the new
    version; returns the version."""
    import mlflow

    from lookalike.registry.mlflow_setup import configure, registry_client

    configure(settings)  # mlflow.register_model reads the process's URIs: make them ours
    version = mlflow.register_model(model_uri, name, tags=tags).version
    registry_client(settings).set_registered_model_alias(name, alias, version)
    return str(version)
