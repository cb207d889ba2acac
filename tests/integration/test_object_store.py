"""The shared state on an S3-compatible store (``moto_server`` as its own process): photos
landed on the store, the lake's Delta tables, staging, index versions and job summaries, with
real Spark (executors do the S3 I/O through ``pyarrow.fs``), delta-rs, and an MLflow
tracking server whose artifacts it proxies to the same S3 server: nothing of the deployment's
shared state lands on this host's disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike import faults, storage
from lookalike.similarity.config import TrainConfig
from tests.support.builders import REPO, TINY_TRAIN

pytestmark = pytest.mark.slow  # servers, training and Spark on S3: minutes, not seconds


@pytest.fixture(scope="module")
def store(s3_server, mlflow_server, tmp_path_factory):
    """Settings whose shared state lives in a fresh bucket and an MLflow server (host-local
    state, caches only, in a temp home)."""
    from lookalike.config import Settings

    bucket = s3_server.bucket()
    home = tmp_path_factory.mktemp("s3-home")
    settings = Settings(
        home=home,
        store_uri=f"s3://{bucket}/store",
        mlflow_tracking_uri=mlflow_server.url,
        # the MLflow server is shared by the test session: this module's own model names
        encoder_model_name=f"encoder-{bucket}",
        encoder_experiment=f"encoder-{bucket}",
        recommender_model_name=f"recommender-{bucket}",
        spark_shuffle_partitions=4,
        promote_require_baseline=False,  # storage is under test here, not the encoder
    )
    return settings, bucket


def _land(local: Path, uri: str) -> int:
    """Upload a local folder of photos to a landing location; returns the file count."""
    files = [p for p in sorted(local.rglob("*")) if p.is_file()]
    for p in files:
        storage.write_bytes(storage.join(uri, *p.relative_to(local).parts), p.read_bytes())
    return len(files)


def test_locations_follow_the_store_uri(store):
    settings, bucket = store
    assert settings.catalog_uri == f"s3://{bucket}/store/lake/catalog"
    assert settings.index_uri == f"s3://{bucket}/store/indexes"
    assert settings.staging_uri == f"s3://{bucket}/store/staging"
    assert settings.cache_dir == settings.home / "cache"  # caches stay on the host
    assert storage.delta_options(settings.catalog_uri) == {"AWS_ALLOW_HTTP": "true"}
    assert storage.delta_options("/tmp/x") == {}


def test_photos_landed_on_the_store_ingest_into_the_lake_on_the_store(
    store, s3_server, spark, photo_folder
):
    from lookalike.catalog.ingest import ingest_folder
    from lookalike.catalog.photos import CatalogPhotos
    from lookalike.catalog.table import catalog_stats, delta_table, table_version

    settings, bucket = store
    assert _land(photo_folder, settings.landing_uri) == 39
    first = ingest_folder(spark, settings.landing_uri, settings=settings, source="landing")
    assert (first.inserted, first.rejected) == (36, 3)
    assert catalog_stats(settings.catalog_uri)["rows"] == 36
    keys = s3_server.keys(bucket, "store/lake/")
    assert "store/lake/catalog/_delta_log/00000000000000000001.json" in keys
    assert any(k.startswith("store/lake/catalog_rejects/_delta_log/") for k in keys)
    # the run's scratch space is gone (pyarrow may leave a folder marker, ending in "/")
    assert [k for k in s3_server.keys(bucket, "store/staging/") if not k.endswith("/")] == []
    assert not (settings.home / "lake").exists() and not (settings.home / "staging").exists()
    rejects = delta_table(settings.rejects_uri).to_pyarrow_table().to_pylist()
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rejects) == [
        "corrupt.png",
        "empty.jpg",
        "readme.txt",
    ]
    assert all(r["path"].startswith(f"s3://{bucket}/store/landing/") for r in rejects)

    version = table_version(settings.catalog_uri)
    photos = CatalogPhotos(settings.catalog_uri, version, max_bytes=4096)
    rows = delta_table(settings.catalog_uri).to_pyarrow_table(columns=["item_id", "image"])
    for item, png in zip(*(rows.column(c).to_pylist() for c in ("item_id", "image")), strict=True):
        assert photos.get(item) == png  # read from S3 on demand
    assert photos.cached_bytes <= max(
        4096, max(len(p) for p in rows.column("image").to_pylist()) * 256
    )

    again = ingest_folder(spark, settings.landing_uri, settings=settings, source="landing")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 36)
    assert table_version(settings.catalog_uri) == version  # a rerun commits nothing

    # The fresh path's driver ingest reads only the new file, from the store, and commits it.
    from lookalike.catalog import landing
    from lookalike.catalog.small_ingest import ingest_small
    from tests.support.builders import write_photo

    before = landing.list_files(settings.landing_uri)
    photo = write_photo(photo_folder.parent / "new hat.png", seed=4242)
    storage.write_bytes(
        storage.join(settings.landing_uri, "Hats", "new hat.png"), photo.read_bytes()
    )
    now = landing.list_files(settings.landing_uri)
    done = ingest_small(settings, settings.landing_uri, "landing", now, before, most=10)
    assert done is not None and (done.inserted, done.version_after) == (1, version + 1)
    assert (
        "Hats-new-hat"
        in delta_table(settings.catalog_uri).to_pyarrow_table()["item_id"].to_pylist()
    )
    assert [k for k in s3_server.keys(bucket, "store/staging/") if not k.endswith("/")] == []


def test_index_versions_live_on_the_store_and_appear_only_with_their_manifest(
    store, s3_server, mlflow_server, spark
):
    from lookalike.catalog.changes import catalog_changes
    from lookalike.catalog.ingest import ingest_fashion_mnist, ingest_folder
    from lookalike.catalog.table import table_version
    from lookalike.index.versions import find_version, list_versions
    from lookalike.similarity.index import update_index
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.training import run_training

    settings, bucket = store
    ingest_fashion_mnist(spark, settings=settings, limit=150)
    trained = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=30)
    result = promote(settings, challenger=trained.model_version, spark=spark)
    assert result.decision.promote and result.index["index_version"] == "v000001"
    assert "store/indexes/v000001/manifest.json" in s3_server.keys(bucket, "store/indexes/")
    assert any(k.startswith("store/lake/embeddings/") for k in s3_server.keys(bucket))
    models = [k for k in s3_server.keys(mlflow_server.bucket) if k.endswith("/MLmodel")]
    assert len(models) >= 2  # the encoder and the bundle, uploaded through the server

    # products change on the store: the change feed (read from S3) drives an update
    watermark = table_version(settings.catalog_uri)
    storage.remove_file(storage.join(settings.landing_uri, "Hats", "item 0.png"))
    ingest_folder(
        spark, settings.landing_uri, settings=settings, source="landing", delete_missing=True
    )
    changes = catalog_changes(settings.catalog_uri, watermark)
    assert changes.deletes == ["Hats-item-0"]

    # an update killed (SIGKILL, no cleanup) half-way through uploading v000002 leaves some
    # of its files but no manifest: invisible to readers, and the next update reuses the name
    killed = _killed_update(settings, "index.half_uploaded")
    assert killed.returncode == -9, killed.stderr[-3000:]
    half = s3_server.keys(bucket, "store/indexes/v000002/")
    assert half and "store/indexes/v000002/manifest.json" not in half
    assert list_versions(settings) == ["v000001"]
    update = update_index(settings, base=find_version(settings, "v000001"))
    assert (update.kind, update.index_version) == ("update", "v000002")
    assert not (settings.home / "mlflow").exists()  # runs and models live on the server

    assert list_versions(settings) == ["v000001", "v000002"]
    keys = {
        k.removeprefix("store/indexes/v000002/")
        for k in s3_server.keys(bucket, "store/indexes/v000002/")
    }
    manifest = json.loads(storage.read_bytes(f"s3://{bucket}/store/indexes/v000002/manifest.json"))
    assert manifest["size"] == update.size
    assert keys == set(manifest["files"]) | {"manifest.json"}  # nothing of the killed upload left


def _killed_update(settings, point: str) -> subprocess.CompletedProcess:
    """``lookalike index update`` in its own process on the same store, killed at ``point``."""
    env = os.environ | {
        "LOOKALIKE_HOME": str(settings.home),
        "LOOKALIKE_STORE_URI": settings.store_uri,
        "LOOKALIKE_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "LOOKALIKE_ENCODER_MODEL_NAME": settings.encoder_model_name,
        "LOOKALIKE_ENCODER_EXPERIMENT": settings.encoder_experiment,
        "LOOKALIKE_RECOMMENDER_MODEL_NAME": settings.recommender_model_name,
        faults.ENV: point,
    }
    cmd = [sys.executable, "-m", "lookalike.cli", "index", "update"]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_a_commit_that_lost_a_race_to_another_writer_is_refused_clearly(store, monkeypatch):
    """Conditional writes: a writer whose snapshot another commit overtook commits nothing
    and says to rerun (the other writer here is a direct delta-rs update)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lookalike.catalog import table as catalog_table

    settings, _ = store
    uri = settings.catalog_uri
    stale = catalog_table.delta_table(uri)
    version = stale.version()
    row = next(r for r in stale.to_pyarrow_table().to_pylist() if r["item_id"] == "Hats-item-1")
    catalog_table.delta_table(uri).update(
        updates={"category_name": "'Caps'"}, predicate="item_id = 'Hats-item-1'"
    )
    change = {k: row[k] for k in catalog_table.CHANGE_SCHEMA.names if k != "_op"}
    change |= {"split": "test" if row["split"] == "train" else "train", "_op": "upsert"}
    staged = storage.join(settings.staging_uri, "race")
    fs, path = storage.filesystem(storage.join(staged, "part-0.parquet"))
    pq.write_table(
        pa.Table.from_pylist([change], schema=catalog_table.CHANGE_SCHEMA), path, filesystem=fs
    )
    monkeypatch.setattr(catalog_table, "ensure_table", lambda _uri, _schema: stale)
    with pytest.raises(catalog_table.WriteConflict, match="another writer committed"):
        catalog_table.merge_changes(uri, staged, commit_metadata={"lookalike.run_id": "race"})
    assert catalog_table.table_version(uri) == version + 1  # only the other writer's commit
    storage.remove_tree(staged)
