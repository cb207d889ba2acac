"""The ``lookalike-recommender`` registered model: publishing bundles, the alias the service
follows (``Settings.serve_alias``, default ``production``), and rolling it back.

A bundle version = encoder version + index version (+ its item rows) in one pyfunc. It is
loaded and self-checked BEFORE it is logged, and the alias moves only after that; each
version remembers the version the alias pointed to before it, which is what ``rollback``
returns to. Downloading and loading a version is the registry's cache
(``lookalike.registry.cache.load_registered``).
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lookalike import locks
from lookalike.config import Settings
from lookalike.faults import crash_point
from lookalike.index import scann_index as sx
from lookalike.registry.aliases import (
    CATALOG_VERSION_TAG,
    ENCODER_TAG,
    INDEX_VERSION_TAG,
    PREVIOUS_PRODUCTION_TAG,
    RECOMMENDER_EXPERIMENT,
)
from lookalike.similarity.bundle import Recommender

if TYPE_CHECKING:
    from lookalike.registry.encoders import EncoderRef

DEFAULT_K = 10


class BundleError(RuntimeError):
    """A bundle cannot be published, found or rolled back; the message says why."""


class BundleSuperseded(BundleError):
    """The served alias already serves a newer index version than the one offered."""


try:  # mlflow is in the lock, but keep this module importable for light unit tests
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover
    _PythonModel = object  # type: ignore[assignment,misc]


OUTPUT_COLUMNS = [
    "query",
    "rank",
    "item_id",
    "category",
    "category_name",
    "score",
    "encoder_version",
    "index_version",
    "catalog_version",
]


class RecommenderModel(_PythonModel):  # type: ignore[misc,valid-type]
    """pyfunc: rows with ``item_id`` (a catalogue item) or ``image`` (base64 PNG/JPEG) ->
    the k most similar items per row, with categories, scores and the versions used."""

    def load_context(self, context: Any) -> None:
        """Load the bundle from the model's artifacts once, when MLflow loads the model."""
        import lookalike  # noqa: F401  (legacy Keras switch before TensorFlow loads)

        self.rec = Recommender.load(context.artifacts["encoder"], context.artifacts["index"])

    # ``model_input`` hinted as a DataFrame only: MLflow infers no schema from it and, hinted,
    # no longer warns on every import of the class (Spark's workers and the service included)
    def predict(self, context, model_input: pd.DataFrame, params=None):
        """Rows with ``item_id`` or ``image`` (PNG/JPEG bytes, base64) -> their top-k similar items
        (``params``: ``k``, ``exclude_self``, ``category``), one output row per hit."""
        params = params or {}
        k = int(params.get("k", DEFAULT_K))
        exclude_self = bool(params.get("exclude_self", True))
        category = params.get("category")
        category = None if category is None or int(category) < 0 else int(category)
        frame = pd.DataFrame(model_input)
        rows = []
        versions = self.rec.versions()
        for q, rec in enumerate(frame.to_dict("records")):
            item_id, image = rec.get("item_id"), rec.get("image")
            if isinstance(item_id, str) and item_id:
                hits = self.rec.similar_to_items(
                    [item_id], k, exclude_self=exclude_self, category=category
                )[0]
            elif isinstance(image, str) and image:
                hits = self.rec.similar_to_images([base64.b64decode(image)], k, category=category)[
                    0
                ]
            else:
                raise ValueError(f"row {q}: give an item_id or an image (base64 PNG/JPEG)")
            for rank, h in enumerate(hits, start=1):
                rows.append(
                    {
                        "query": q,
                        "rank": rank,
                        "item_id": h.item_id,
                        "category": h.category,
                        "category_name": h.category_name,
                        "score": h.score,
                        "encoder_version": versions["encoder_version"],
                        "index_version": versions["index_version"],
                        "catalog_version": versions["catalog_version"],
                    }
                )
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "item_id", required=False),
                ColSpec("string", "image", required=False),
            ]
        ),
        outputs=Schema(
            [
                ColSpec("long", "query"),
                ColSpec("long", "rank"),
                ColSpec("string", "item_id"),
                ColSpec("long", "category"),
                ColSpec("string", "category_name"),
                ColSpec("double", "score"),
                ColSpec("string", "encoder_version"),
                ColSpec("string", "index_version"),
                ColSpec("long", "catalog_version"),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("k", "long", DEFAULT_K),
                ParamSpec("exclude_self", "boolean", True),
                ParamSpec("category", "long", -1),
            ]
        ),
    )


@dataclass
class PublishResult:
    """What publishing an index version did: the bundle version, whether it was reused (a rerun)
    and whether the served alias points to it now."""

    bundle_version: str
    index_version: str
    encoder: str
    previous_production: str | None
    production: bool
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the command's output, an XCom)."""
        return asdict(self)


def _client(settings: Settings) -> Any:
    from lookalike.registry.mlflow_setup import client

    return client(settings, RECOMMENDER_EXPERIMENT)


def production_version(settings: Settings) -> Any | None:
    """The model version the served alias (``Settings.serve_alias``) points to, or None."""
    from lookalike.registry.versions import find_version

    return find_version(
        settings.recommender_model_name, settings.serve_alias, client=_client(settings)
    )


def _existing_bundle(settings: Settings, client: Any, index_version: str) -> Any | None:
    """A bundle version already published for this index version (rerun after a failure)."""
    from mlflow.exceptions import MlflowException

    name = settings.recommender_model_name
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        if (mv.tags or {}).get(INDEX_VERSION_TAG) == index_version:
            return mv
    return None


def publish_bundle(
    settings: Settings, index_dir: Path, *, set_production: bool = True
) -> PublishResult:
    """Log + register encoder and index as one bundle version; move the served alias
    (``Settings.serve_alias``) to it unless ``set_production`` is False.

    Holds the served alias's lease (``lookalike.locks``), and never moves the alias to an
    older index version than it serves (``BundleSuperseded``): a refresh that lost the race
    to a promotion must not put the old encoder back."""
    from lookalike.registry.encoders import fetch_encoder

    manifest = sx.verify_version(index_dir)
    enc = manifest["encoder"]
    encoder = fetch_encoder(settings, str(enc["version"]))
    Recommender.load(encoder.local_dir, index_dir)  # refuse a broken bundle before logging it
    purpose = f"publish the bundle of index {manifest['index_version']}"
    with locks.writer_lease(settings, locks.PRODUCTION, purpose):
        return _publish(settings, index_dir, manifest, encoder, set_production)


def _publish(
    settings: Settings,
    index_dir: Path,
    manifest: dict[str, Any],
    encoder: EncoderRef,
    set_production: bool,
) -> PublishResult:
    client = _client(settings)
    current = production_version(settings)
    if set_production:  # before registering: a superseded index gets no bundle version
        _refuse_superseded(settings, current, manifest["index_version"])
    found = _existing_bundle(settings, client, manifest["index_version"])
    if found is not None:
        version, reused = str(found.version), True
    else:
        version, reused = _log_and_register(settings, index_dir, manifest, encoder), False
        crash_point("bundle.registered")
    previous = str(current.version) if current is not None else None
    moved = False
    if set_production:
        serve_bundle(settings, version, manifest["index_version"])
        moved = previous != version
    enc = manifest["encoder"]
    return PublishResult(
        bundle_version=version,
        index_version=manifest["index_version"],
        encoder=f"{enc['name']}/{enc['version']}",
        previous_production=previous,
        production=moved or previous == version,
        reused=reused,
    )


def serve_bundle(settings: Settings, bundle_version: str, index_version: str) -> str | None:
    """Point the served alias at registered bundle ``bundle_version`` (which holds
    ``index_version``), holding the alias's lease and refusing an older index than the one
    served (``BundleSuperseded``); returns the version the alias pointed to before."""
    from lookalike.registry.gate import move_alias

    with locks.writer_lease(settings, locks.PRODUCTION, f"serve bundle v{bundle_version}"):
        current = production_version(settings)
        _refuse_superseded(settings, current, index_version)
        previous = str(current.version) if current is not None else None
        if previous != bundle_version:
            move_alias(
                _client(settings),
                settings.recommender_model_name,
                settings.serve_alias,
                bundle_version,
                previous=previous,
                previous_tag=PREVIOUS_PRODUCTION_TAG,
            )
            crash_point("bundle.alias_moved")
        return previous


def _index_number(name: str) -> int:
    return int(name.lstrip("v"))


def _refuse_superseded(settings: Settings, current: Any | None, index_version: str) -> None:
    """BundleSuperseded when the served bundle holds a newer index version than ours."""
    served = (current.tags or {}).get(INDEX_VERSION_TAG) if current is not None else None
    if served and _index_number(served) > _index_number(index_version):
        raise BundleSuperseded(
            f"index {index_version} is older than {served}, which {settings.serve_alias!r} "
            f"(bundle v{current.version}) serves already: another writer published a newer "
            f"index meanwhile; {settings.serve_alias!r} stays where it is"
        )


def _log_and_register(
    settings: Settings, index_dir: Path, manifest: dict[str, Any], encoder: EncoderRef
) -> str:
    """Log the bundle (encoder + index version) as a pyfunc in its own run and register it,
    tagged with its index, encoder and catalogue versions; returns the new model version."""
    import mlflow

    enc = manifest["encoder"]
    with mlflow.start_run(run_name=f"bundle-{manifest['index_version']}") as run:
        mlflow.log_params(
            {
                "index_version": manifest["index_version"],
                "encoder": f"{enc['name']}/{enc['version']}",
                "catalog_version": manifest["catalog_version"],
                "index_kind": manifest.get("kind", "full"),
                "size": manifest["size"],
            }
        )
        mlflow.log_metric("index_recall_at_10", float(manifest["recall_at_10"]))
        if "recall_at_10_strict" in manifest:  # index versions built before it lack it
            strict = float(manifest["recall_at_10_strict"])
            mlflow.log_metric("index_recall_at_10_strict", strict)
        mlflow.log_dict(manifest, "index_manifest.json")
        import pandas as pd

        example = pd.DataFrame({"item_id": [_first_item(index_dir)], "image": [None]})
        mlflow.pyfunc.log_model(
            name="recommender",
            python_model=RecommenderModel(),
            artifacts={"encoder": encoder.local_dir, "index": str(index_dir)},
            signature=_signature(),
            input_example=example,
            metadata={
                "index_version": manifest["index_version"],
                "encoder_name": enc["name"],
                "encoder_version": str(enc["version"]),
                "catalog_version": int(manifest["catalog_version"]),
                "embedding_size": int(manifest["dimension"]),
            },
            pip_requirements=[],  # the deployment's own environment (requirements.lock)
        )
        uri = f"runs:/{run.info.run_id}/recommender"
    crash_point("bundle.logged")
    tags = {
        INDEX_VERSION_TAG: manifest["index_version"],
        ENCODER_TAG: f"{enc['name']}/{enc['version']}",
        CATALOG_VERSION_TAG: str(manifest["catalog_version"]),
    }
    return str(mlflow.register_model(uri, settings.recommender_model_name, tags=tags).version)


def _first_item(index_dir: Path) -> str:
    import pyarrow.parquet as pq

    return pq.read_table(Path(index_dir) / sx.ITEMS, columns=["item_id"]).column(0)[0].as_py()


def rollback(settings: Settings) -> dict[str, Any]:
    """Move the served alias back to the version it pointed to before the current one
    (holding the alias's lease, as a publish does)."""
    client = _client(settings)
    name, alias = settings.recommender_model_name, settings.serve_alias
    with locks.writer_lease(settings, locks.PRODUCTION, f"roll {alias} back"):
        current = production_version(settings)
        if current is None:
            raise BundleError(f"{name!r} has no {alias!r} version to roll back from")
        previous = (current.tags or {}).get(PREVIOUS_PRODUCTION_TAG)
        if not previous:
            raise BundleError(
                f"{name} version {current.version} has no previous {alias} version to return to"
            )
        client.set_registered_model_alias(name, alias, previous)
    return {"from": str(current.version), "to": str(previous)}


def describe(settings: Settings) -> dict[str, Any]:
    """Production bundle: version, its tags (index, encoder, catalogue)."""
    mv = production_version(settings)
    if mv is None:
        return {"production": None}
    return {"production": str(mv.version), "tags": dict(mv.tags or {})} | {
        "source": mv.source,
        "created": mv.creation_timestamp,
    }
