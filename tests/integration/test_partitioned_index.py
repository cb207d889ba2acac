"""A catalogue above the brute-force threshold (3,000 Fashion-MNIST items), so the pipeline's
full build, incremental update, rebalance and recall gate run on a PARTITIONED ScaNN index;
and the refusals: recall below the gate, an empty catalogue, every item deleted. A refused
build leaves the latest index version and ``production`` where they were."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from lookalike.similarity.config import TrainConfig
from tests.support.builders import FASHION_MNIST_DIR, TINY_TRAIN

pytestmark = pytest.mark.slow  # embeds 3,000 photos with Spark and builds real indexes


def _production(settings) -> str | None:
    from lookalike.similarity.registry import production_version

    mv = production_version(settings)
    return None if mv is None else str(mv.version)


def _unchanged(settings, latest: str, production: str | None) -> None:
    from lookalike.index.versions import latest_name

    assert latest_name(settings) == latest and _production(settings) == production


def test_partitioned_build_update_rebalance_and_refusals(spark, tmp_path):
    from lookalike.catalog.ingest import ingest_fashion_mnist, ingest_folder
    from lookalike.config import Settings
    from lookalike.index import scann_index as sx
    from lookalike.index.versions import find_version, latest_name
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.index import IndexBuildError, build_full, update_index
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.registry import publish_bundle
    from lookalike.similarity.training import run_training
    from tests.support.photos import land_fashion_mnist_photos

    settings = Settings(home=tmp_path / "home", spark_shuffle_partitions=4)
    ingest_fashion_mnist(spark, settings=settings, limit=1500)
    trained = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=200)

    # -- full build: partitioned (not brute force), tuned, gated, in production
    promoted = promote(settings, challenger=trained.model_version, spark=spark)
    assert promoted.index["size"] == 3000 > sx.BRUTE_FORCE_BELOW
    _, manifest = sx.load_version(find_version(settings, "v000001"))
    assert manifest["params"]["num_leaves"] > 0 and manifest["search"]["leaves_to_search"] > 0
    assert manifest["recall_at_10"] >= settings.index_min_recall
    assert manifest["balanced_imbalance"] > 0  # the baseline later updates compare against
    encoder = fetch_encoder(settings, trained.model_version)

    # -- update: 30 new photos, 20 discontinued; partitions kept (few changes)
    landing = tmp_path / "landing"
    land_fashion_mnist_photos(FASHION_MNIST_DIR, str(landing), range(2000, 2030), mirror=True)
    gone = [f"fm-train-{i:05d}" for i in range(20)]
    ingest_folder(spark, landing, settings=settings, discontinued=gone)
    update = update_index(settings)
    assert update.kind == "update" and not update.rebalanced and update.size == 3010
    assert update.recall_at_10 >= settings.index_min_recall

    # -- rebalance once the changes since the last one pass the share
    eager = settings.model_copy(update={"index_rebalance_share": 0.005})
    gone = [f"fm-test-{i:05d}" for i in range(20)]
    ingest_folder(spark, landing, settings=settings, discontinued=gone)
    rebalanced = update_index(eager)
    assert rebalanced.kind == "update" and rebalanced.rebalanced and rebalanced.size == 2990
    assert rebalanced.recall_at_10 >= settings.index_min_recall
    _, manifest = sx.load_version(find_version(settings, None))
    assert manifest["changed_since_rebalance"] == 0
    assert update_index(settings).kind == "none"  # nothing changed since: no version
    publish_bundle(settings, find_version(settings, None))
    latest, production = latest_name(settings), _production(settings)

    # -- recall below the gate: nothing published, nothing moved
    class Starved(sx.IndexParams):
        @classmethod
        def for_size(cls, n: int, dim: int = 0) -> sx.IndexParams:
            return sx.IndexParams(num_leaves=60, num_leaves_to_search=1, reorder=10)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sx, "IndexParams", Starved)
        with pytest.raises(sx.RecallTooLow, match=r"recall@10 0\.\d+ .*< 0\.98 \(not published\)"):
            build_full(settings, encoder, spark=spark)
    _unchanged(settings, latest, production)

    # -- an empty catalogue version, and an update that would delete every item: refused
    assert DeltaTable(settings.catalog_uri).history()[-1]["operation"] == "CREATE TABLE"
    with pytest.raises(IndexBuildError, match="no items to index"):
        build_full(settings, encoder, catalog_version=0)
    everything = DeltaTable(settings.catalog_uri).to_pyarrow_table(columns=["item_id"])
    all_ids = everything["item_id"].to_pylist()
    ingest_folder(spark, landing, settings=settings, discontinued=all_ids)
    with pytest.raises(IndexBuildError, match="every item was deleted"):
        update_index(settings)
    _unchanged(settings, latest, production)
