"""MLflow set-up: the deployment's tracking and registry URI (from settings) and experiments."""

from __future__ import annotations

from typing import Any

from lookalike.config import Settings


def configure(settings: Settings) -> None:
    """Point this process's MLflow (tracking and registry) at the deployment's store."""
    import mlflow

    if not is_server(settings):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


def is_server(settings: Settings) -> bool:
    """True when tracking goes to an MLflow server (``http(s)://``): artifacts then go through
    the server (``mlflow-artifacts:``), so no process needs the artifact store on its disk."""
    return settings.tracking_uri.startswith(("http://", "https://"))


def setup_mlflow(settings: Settings, experiment: str | None = None) -> str:
    """``configure``, then create or select ``experiment`` (default the encoder's); returns
    the experiment id. With the default local store, artifacts go under the home; with a
    server, where the server puts them (its ``--artifacts-destination``)."""
    import mlflow

    configure(settings)
    name = experiment or settings.encoder_experiment
    found = mlflow.get_experiment_by_name(name)
    if found is None and is_server(settings):
        exp_id = mlflow.create_experiment(name)
    elif found is None:
        artifacts = (settings.mlflow_dir / "artifacts").as_uri()
        exp_id = mlflow.create_experiment(name, artifact_location=artifacts)
    else:
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def client(settings: Settings, experiment: str | None = None) -> Any:
    """An ``MlflowClient`` after ``setup_mlflow(settings, experiment)``."""
    from mlflow import MlflowClient

    setup_mlflow(settings, experiment)
    return MlflowClient()


def registry_client(settings: Settings) -> Any:
    """An ``MlflowClient`` bound to the deployment's URIs, touching no process-wide MLflow
    state (a long-lived holder: the service's alias watcher; any one-off registry call)."""
    from mlflow import MlflowClient

    if not is_server(settings):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)
