"""Embeddings, index versions, incremental updates, the bundle, promotion and rollback,
against a real catalogue, a real MLflow registry and real Spark (small slices)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from deltalake import DeltaTable

from lookalike.similarity.config import TrainConfig
from tests.support.builders import REPO, TINY_TRAIN

pytestmark = pytest.mark.slow  # trains two encoders, builds and publishes real indexes: minutes


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """A catalogue (300 train + 300 test) and two registered encoder versions."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings
    from lookalike.similarity.training import run_training

    settings = Settings(home=tmp_path_factory.mktemp("index-home"), spark_shuffle_partitions=4)
    ingest_fashion_mnist(spark, settings=settings, limit=300)
    v1 = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=200)
    v2 = run_training(
        TrainConfig.from_dict(TINY_TRAIN | {"seed": 7}), settings=settings, eval_limit=200
    )
    return settings, v1.model_version, v2.model_version


def _production(settings):
    from lookalike.similarity.registry import production_version

    mv = production_version(settings)
    return None if mv is None else str(mv.version)


def _catalog_png(settings, item_id: str) -> bytes:
    table = DeltaTable(str(settings.catalog_uri)).to_pyarrow_table(columns=["item_id", "image"])
    ids = table.column("item_id").to_pylist()
    return table.column("image")[ids.index(item_id)].as_py()


def test_pipeline_promote_update_rollback(world, spark, tmp_path):
    from lookalike.catalog.ingest import ingest_folder
    from lookalike.index.versions import latest_version
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.bundle import Recommender
    from lookalike.similarity.embeddings import embed_catalog, read_embeddings
    from lookalike.similarity.index import EncoderMismatch, update_index
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.registry import rollback

    settings, v1, v2 = world

    # -- no champion yet: v1 wins, gets a full index, a bundle, and production
    first = promote(settings, challenger=v1, spark=spark)
    assert first.decision.promote and first.decision.reason.startswith("no champion yet")
    assert first.moved == {"champion": v1, "production": first.bundle["bundle_version"]}
    assert first.index["size"] == 600 and first.index["recall_at_10"] >= 0.98
    bundle1 = _production(settings)
    emb_path = settings.embeddings_uri
    ids, vectors, _ = read_embeddings(emb_path, settings.encoder_model_name, v1)
    assert len(ids) == 600 and vectors.shape == (600, 128 + 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)

    # -- re-embedding an unchanged catalogue embeds nothing and commits nothing
    before = DeltaTable(str(emb_path)).version()
    again = embed_catalog(spark, settings, fetch_encoder(settings, v1))
    assert (again.embedded, again.deleted) == (0, 0)
    assert DeltaTable(str(emb_path)).version() == before

    # -- catalogue changes: 3 new products (photos), 2 discontinued
    index1 = latest_version(settings)
    new_dir = tmp_path / "landing"
    for i, fm_id in enumerate(["fm-test-00000", "fm-test-00001", "fm-test-00002"]):
        (new_dir / "Sneaker").mkdir(parents=True, exist_ok=True)
        (new_dir / "Sneaker" / f"new {i}.png").write_bytes(_catalog_png(settings, fm_id))
    gone = ["fm-train-00000", "fm-train-00001"]
    ingest_folder(spark, new_dir, settings=settings, discontinued=gone)

    # a different encoder version is never mixed into an index
    with pytest.raises(EncoderMismatch, match="never two encoder versions"):
        update_index(settings, encoder=fetch_encoder(settings, v2))

    update = update_index(settings)
    assert update.kind == "update" and update.base_index_version == index1.name
    assert update.changes["inserts"] == 3 and update.changes["deletes"] == 2
    assert update.size == 601
    rec = Recommender.load(fetch_encoder(settings, v1).local_dir, update.path)
    new_ids = ["Sneaker-new-0", "Sneaker-new-1", "Sneaker-new-2"]
    everything = rec.similar_to_items(rec.item_ids[:50] + new_ids, k=600, exclude_self=False)
    seen = {h.item_id for hits in everything for h in hits}
    assert not seen & set(gone), "deleted products must never be returned"
    by_photo = rec.similar_to_images([_catalog_png(settings, "Sneaker-new-1")], k=3)[0]
    assert by_photo[0].score > 0.999 and "Sneaker-new-1" in {h.item_id for h in by_photo[:2]}
    ids, _, _ = read_embeddings(emb_path, settings.encoder_model_name, v1)
    assert len(ids) == 601 and not set(gone) & set(ids)

    # -- an updated photo reaches the index; then nothing to do means no new version
    old_vector = rec.vectors[rec.row["Sneaker-new-0"]]
    (new_dir / "Sneaker" / "new 0.png").write_bytes(_catalog_png(settings, "fm-test-00010"))
    ingest_folder(spark, new_dir, settings=settings)
    updated = update_index(settings)
    assert updated.changes["updates"] == 1 and updated.changes["inserts"] == 0
    rec2 = Recommender.load(fetch_encoder(settings, v1).local_dir, updated.path)
    assert not np.allclose(rec2.vectors[rec2.row["Sneaker-new-0"]], old_vector)
    nothing = update_index(settings)
    assert nothing.kind == "none" and nothing.index_version is None
    assert latest_version(settings).name == updated.index_version

    # -- bundles + rollback
    from lookalike.similarity.registry import publish_bundle

    published = publish_bundle(settings, Path(updated.path))
    assert published.previous_production == bundle1 and _production(settings) != bundle1
    assert publish_bundle(settings, Path(updated.path)).reused  # rerun: same version
    assert rollback(settings) == {"from": published.bundle_version, "to": bundle1}
    assert _production(settings) == bundle1

    # -- the gate keeps the champion when the challenger is not better by the margin
    keep = promote(settings, challenger=v2, margin=1.0, spark=spark)
    assert not keep.decision.promote and keep.champion_metrics is not None
    assert keep.decision.champion_version == v1 and not keep.moved
    assert _production(settings) == bundle1


def test_bundle_loads_in_a_fresh_process_and_answers_both_inputs(world, spark):
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.registry import production_version

    settings, v1, _ = world
    if production_version(settings) is None:
        promote(settings, challenger=v1, spark=spark)
    png = _catalog_png(settings, "fm-test-00005")
    script = f"""
import json, mlflow, pandas as pd

mlflow.set_tracking_uri({settings.tracking_uri!r})
m = mlflow.pyfunc.load_model("models:/lookalike-recommender@production")
out = m.predict(pd.DataFrame({{"item_id": ["fm-test-00005", None],
                                "image": [None, {base64.b64encode(png).decode()!r}]}}),
                params={{"k": 4}})
print(json.dumps(out.to_dict("records")))
"""
    env = os.environ | {"LOOKALIKE_HOME": str(settings.home)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    by_id = [r for r in rows if r["query"] == 0]
    by_image = [r for r in rows if r["query"] == 1]
    assert len(by_id) == 4 and len(by_image) == 4
    assert "fm-test-00005" not in {r["item_id"] for r in by_id}  # exclude_self by default
    assert by_image[0]["score"] > 0.999  # the photo of an indexed item finds that item
    assert {"encoder_version", "index_version", "catalog_version"} <= set(rows[0])
    assert all("image" not in r for r in rows)  # ids and scores, never pixels


def test_corrupt_index_version_is_refused(world, spark, tmp_path):
    from lookalike.index.scann_index import IndexVersionError
    from lookalike.index.versions import latest_version
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.registry import publish_bundle

    settings, v1, _ = world
    if latest_version(settings) is None:
        promote(settings, challenger=v1, spark=spark)
    broken = tmp_path / latest_version(settings).name
    shutil.copytree(latest_version(settings), broken)
    vectors = broken / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexVersionError, match=r"checksum mismatch for vectors\.npy"):
        publish_bundle(settings, broken)


def test_cli_index_commands_and_spark_submit_reindex(world, spark):
    from lookalike.similarity.promotion import promote

    settings, v1, _ = world
    from lookalike.similarity.registry import production_version

    if production_version(settings) is None:
        promote(settings, challenger=v1, spark=spark)
    env = os.environ | {"LOOKALIKE_HOME": str(settings.home), "LOOKALIKE_SPARK_DRIVER_MEMORY": "1g"}
    bin_dir = Path(sys.executable).parent
    listed = subprocess.run(
        [str(bin_dir / "lookalike"), "index", "list"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)
    assert versions and versions[-1]["encoder"] == f"lookalike-encoder/{v1}"
    from lookalike.catalog.table import table_version
    from lookalike.index.versions import read_manifest, served_name
    from lookalike.workflows.catalog import catalog_changed_since_served

    # after the first test's rollback the served bundle is behind the catalogue: the reindex
    # starts from what is served (not the newest version on the store) and catches it up
    served_before = served_name(settings)
    expected = "update" if catalog_changed_since_served(settings) else "none"
    summary = settings.home / "reindex.json"
    done = subprocess.run(
        [
            str(bin_dir / "spark-submit"),
            "--master",
            "local[2]",
            "spark_jobs/reindex.py",
            "--summary-file",
            str(summary),
        ],
        env=env | {"PYSPARK_PYTHON": sys.executable},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(summary.read_text())
    assert result["kind"] == expected and result["base_index_version"] == served_before
    served = served_name(settings)
    assert read_manifest(settings, served)["catalog_version"] == table_version(settings.catalog_uri)
    assert not catalog_changed_since_served(settings)
    bad = subprocess.run(
        [str(bin_dir / "lookalike"), "index", "verify", "v999999"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "no index version 'v999999'" in bad.stderr


def _served_items(settings) -> set[str]:
    """The item ids of the index the served bundle holds."""
    from lookalike.index.scann_index import load_rows
    from lookalike.index.versions import find_version, served_name

    return set(load_rows(find_version(settings, served_name(settings)))[1]["item_id"].to_pylist())


def test_a_promotion_catches_up_with_the_catalogue_and_moves_both_aliases_or_neither(
    world, spark, tmp_path, monkeypatch
):
    """The weekly DAG gates and indexes the challenger at the catalogue version it recorded
    before training; meanwhile a refresh served newer products. The promotion must serve them
    too (its index is brought up to date before it is published), and when ``production``
    cannot move, ``champion`` is put back and the gate's run says why. Runs last in this
    module: it makes v2 the champion."""
    from mlflow import MlflowClient

    from lookalike.catalog.ingest import ingest_folder
    from lookalike.catalog.table import table_version
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.registry.versions import get_version
    from lookalike.similarity import registry as bundles
    from lookalike.similarity.index import build_full, update_index
    from lookalike.similarity.promotion import evaluate_gate, finalize, promote

    settings, v1, v2 = world
    settings = settings.model_copy(update={"promote_require_baseline": False})
    if bundles.production_version(settings) is None:
        promote(settings, challenger=v1, spark=spark)
    recorded = table_version(settings.catalog_uri)  # what the weekly DAG records at its start

    # while the challenger trains: photos land, a refresh serves them
    landing = tmp_path / "late-photos"
    for i, fm_id in enumerate(["fm-test-00020", "fm-test-00021"]):
        (landing / "Bag").mkdir(parents=True, exist_ok=True)
        (landing / "Bag" / f"late {i}.png").write_bytes(_catalog_png(settings, fm_id))
    ingest_folder(spark, landing, settings=settings)
    refresh = update_index(settings, base="served")
    bundles.publish_bundle(settings, Path(refresh.path))
    served_before = _served_items(settings)
    assert {"Bag-late-0", "Bag-late-1"} <= served_before
    production_before = _production(settings)

    gate = evaluate_gate(settings, challenger=v2, margin=-1.0, catalog_version=recorded)
    assert gate.decision.promote and gate.catalog_version == recorded
    index = build_full(settings, fetch_encoder(settings, v2), spark=spark, catalog_version=recorded)
    assert index.catalog_version < table_version(settings.catalog_uri)

    # production cannot move: champion is put back, the gate run records the failure
    def refuse(*args, **kwargs):
        raise RuntimeError("registry refused the move")

    monkeypatch.setattr(bundles, "serve_bundle", refuse)
    with pytest.raises(RuntimeError, match="registry refused"):
        finalize(settings, gate, Path(index.path))
    client = MlflowClient(settings.tracking_uri)
    assert str(get_version(settings.encoder_model_name, "champion", client=client).version) == v1
    assert _production(settings) == production_before
    run = client.get_run(gate.run_id)
    assert run.data.tags["decision"] == "promote-failed"
    assert "registry refused" in run.data.tags["failure"]

    # the rerun (Airflow's retry) promotes, and every product served before is served after
    monkeypatch.undo()
    done = finalize(settings, gate, Path(index.path))
    assert done.catch_up is not None and done.catch_up["kind"] == "update"
    assert done.catch_up["catalog_version"] == table_version(settings.catalog_uri)
    assert done.moved == {"champion": v2, "production": done.bundle["bundle_version"]}
    served = bundles.production_version(settings)
    assert served.tags["lookalike.encoder"].endswith(f"/{v2}")
    assert str(get_version(settings.encoder_model_name, "champion", client=client).version) == v2
    assert served_before <= _served_items(settings)
