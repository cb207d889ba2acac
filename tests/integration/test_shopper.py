"""Shopper model end to end on real Delta tables, Spark and an MLflow registry: ingest with
rejects, idempotent reruns, training with the baselines, the promotion gate, Horovod."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.support.builders import REPO, TINY_SHOPPER, make_shopper_model


@pytest.fixture(scope="module")
def shop(spark, tmp_path_factory):
    """A catalogue slice (150 + 150 items) and a trained, promoted shopper model."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings

    settings = Settings(home=tmp_path_factory.mktemp("shopper-home"), spark_shuffle_partitions=4)
    ingest_fashion_mnist(spark, settings=settings, limit=150)
    first = make_shopper_model(settings, spark, users=200, events=10_000)
    return settings, first


def test_bad_rows_are_rejected_with_reasons_and_nothing_else_is_lost(shop, tmp_path):
    from lookalike.shopper.interactions import InteractionsError, ingest_file

    settings, _ = shop
    table = DeltaTable(str(settings.interactions_uri))
    before_version, before_rows = table.version(), len(table.to_pyarrow_table())
    item = "fm-train-00001"
    csv = tmp_path / "events.csv"
    csv.write_text(
        "user_id,item_id,event_type,ts,session_id\n"
        f"newbie,{item},view,2026-03-01T10:00:00Z,s1\n"
        f"newbie,{item},purchase,2026-03-01T10:05:00Z,s1\n"
        f"newbie,no-such-item,view,2026-03-01T10:06:00Z,s1\n"
        f",{item},view,2026-03-01T10:07:00Z,s1\n"
        f"newbie,{item},wishlist,2026-03-01T10:08:00Z,s1\n"
        f"newbie,{item},view,yesterday,s1\n"
    )
    summary = ingest_file(settings, csv)
    assert (summary.inserted, summary.rejected) == (2, 4)
    assert summary.reasons == {
        "unknown item (not in the catalogue)": 1,
        "missing user_id": 1,
        "event_type not one of ['view', 'add_to_cart', 'purchase']": 1,
        "ts is not ISO 8601 or epoch seconds": 1,
    }
    after = DeltaTable(str(settings.interactions_uri))
    assert after.version() == before_version + 1  # the good rows: one commit
    assert len(after.to_pyarrow_table()) == before_rows + 2
    rejects = DeltaTable(str(settings.interactions_rejects_uri)).to_pyarrow_table().to_pandas()
    mine = rejects[rejects["run_id"] == summary.run_id]
    assert sorted(mine["path"].str.rsplit(":", n=1).str[-1].astype(int)) == [3, 4, 5, 6]
    # the same file again: nothing inserted, no commit, rejects not recorded twice
    again = ingest_file(settings, csv)
    assert again.inserted == 0
    assert DeltaTable(str(settings.interactions_uri)).version() == before_version + 1
    rejects2 = DeltaTable(str(settings.interactions_rejects_uri)).to_pyarrow_table()
    assert len(rejects2) == len(rejects)
    # a file without a required column is refused whole, naming the column
    broken = tmp_path / "broken.csv"
    broken.write_text("user_id,item_id,ts\nu1,x,2026-03-01T10:00:00Z\n")
    with pytest.raises(InteractionsError, match="event_type"):
        ingest_file(settings, broken)
    assert DeltaTable(str(settings.interactions_uri)).version() == before_version + 1


def test_training_beats_popularity_registers_and_the_gate_promotes(shop):
    from lookalike.shopper.promotion import promote
    from lookalike.shopper.registry import load_version, version_by

    settings, first = shop
    metrics = first["train"].metrics
    assert set(metrics) == {"mf", "popularity", "als"}
    assert metrics["mf"]["ndcg_at_10"] > metrics["popularity"]["ndcg_at_10"]
    assert 0 < metrics["als"]["ndcg_at_10"] <= 1
    assert first["train"].model_version == "1" and first["promote"].decision.promote is True
    prod = version_by(settings, "production")
    assert prod is not None and str(prod.version) == "1"
    rec = load_version(settings, "1")  # a fresh copy from the registry, checksums verified
    hits, mode = rec.recommend(rec.user_ids[0], 5)
    assert mode == "personal" and len(hits) == 5
    # A clearly worse challenger (one tiny epoch) is kept out of production
    from lookalike.shopper.model import MFConfig
    from lookalike.shopper.training import train_shopper

    weak = train_shopper(
        settings,
        MFConfig(**TINY_SHOPPER | {"epochs": 1, "learning_rate": 1e-5}),
        baselines=False,
    )
    gate = promote(settings)
    assert gate.decision.challenger_version == weak.model_version == "2"
    assert gate.decision.promote is False and gate.production == "1"
    assert gate.to_dict()["production"] == "1" and gate.to_dict()["production_before"] == "1"
    assert str(version_by(settings, "production").version) == "1"


def test_cli_errors_name_the_bad_input(shop, tmp_path):
    settings, _ = shop
    env = {"LOOKALIKE_HOME": str(settings.home), "PATH": str(Path(sys.executable).parent)}
    cli = [sys.executable, "-m", "lookalike.cli", "shopper"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cli, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
        )

    missing = run("ingest", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "PATH: file not found" in missing.stderr
    bad_set = run("train", "--set", "factors=-1")
    assert bad_set.returncode == 2 and "factors" in bad_set.stderr
    bad_tune = run("train", "--tune", "-1")
    assert bad_tune.returncode == 2 and "--tune: must be 'auto' or a number" in bad_tune.stderr
    no_trials = run("tune", "--trials", "0")
    assert no_trials.returncode == 2 and "--trials" in no_trials.stderr
    blend = run("recommend", "u001", "--blend", "3")
    assert blend.returncode == 2 and "--blend" in blend.stderr
    ok = run("recommend", "someone-new", "--k", "3")
    assert ok.returncode == 0 and "fallback:popular-diverse" in ok.stdout


@pytest.mark.slow
@pytest.mark.parametrize("loss", [{}, {"loss": "softmax", "context": 3}], ids=["bce", "softmax"])
def test_horovod_two_ranks_train_identical_weights(shop, spark, loss):
    """Two Horovod ranks on Spark end with the same weights (train_shopper checks the
    checksums of every rank and raises otherwise) and a model better than popularity; with
    the BCE loss and with softmax over the shopper's latest items."""
    from lookalike.shopper.model import MFConfig
    from lookalike.shopper.training import train_shopper

    settings, _ = shop
    result = train_shopper(
        settings,
        MFConfig(**TINY_SHOPPER | loss),
        horovod=2,
        baselines=False,
        register=False,
        spark=spark,
    )
    assert result.model_version is None
    assert result.metrics["mf"]["ndcg_at_10"] > result.metrics["popularity"]["ndcg_at_10"]


def test_movielens_format_file_from_the_pyspark_distribution(tmp_path):
    """The MovieLens-format ratings sample that ships with pyspark (user::movie::rating::ts)."""
    import pyspark

    from lookalike.config import Settings
    from lookalike.shopper.data import prepare
    from lookalike.shopper.interactions import ingest_file, read_interactions

    sample = Path(pyspark.__file__).parent / "data/mllib/als/sample_movielens_ratings.txt"
    settings = Settings(home=tmp_path / "ml-home")
    copy = tmp_path / "ratings.dat"  # the .dat suffix MovieLens uses
    copy.write_bytes(sample.read_bytes())
    summary = ingest_file(settings, copy, check_items=False)
    assert (summary.rows, summary.inserted, summary.rejected) == (1501, 1501, 0)
    events = read_interactions(settings.interactions_uri)
    assert set(events.column("event_type").to_pylist()) == {"view"}
    split = prepare(events)
    assert (split.n_users, split.n_items) == (30, 100)


@pytest.mark.slow
def test_auto_tuning_searches_the_default_config_once_then_reuses_it(shop, spark):
    """``tune auto`` around the DEFAULT configuration (with a 2-trial budget): the first call
    searches, the base configuration scored as a nested run beside two SparkTrials trials,
    each with its validation NDCG@10, and the parent holds the best, never below the base;
    the second call on the same data reuses that search without training anything; the best
    parameters train a model whose run points back at the search."""
    from mlflow import MlflowClient

    from lookalike.shopper.model import MFConfig
    from lookalike.shopper.training import train_shopper
    from lookalike.shopper.tuning import tuned_config

    settings = shop[0].model_copy(update={"shopper_tune_trials": 2})
    cfg, found = tuned_config(settings, MFConfig(), "auto", parallelism=2, spark=spark)
    assert not found.reused and found.trials == found.trials_ok == 2
    client = MlflowClient(settings.tracking_uri)
    parent = client.get_run(found.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{found.parent_run_id}'",
    )
    named = {c.info.run_id: c.data.tags["mlflow.runName"] for c in children}
    assert sorted(named.values()) == ["base", "trial", "trial"]
    scores = {c.info.run_id: c.data.metrics["val_ndcg_at_10"] for c in children}
    assert all(0 < s <= 1 for s in scores.values())
    assert all(c.info.status == "FINISHED" for c in children)  # none left RUNNING
    ran = {c.info.run_id: c.data.metrics["epochs_trained"] for c in children}
    assert all(1 <= ran[c.info.run_id] <= int(c.data.params["epochs"]) for c in children)
    budget = settings.shopper_tune_minutes * 60 * 2 / 2  # the limit x 2 at once / 2 trials
    assert parent.data.params["trial_budget_seconds"] == str(round(budget))
    base_score = next(s for r, s in scores.items() if named[r] == "base")
    assert found.base_val_ndcg_at_10 == pytest.approx(base_score, abs=1e-5)
    assert parent.data.metrics["best_val_ndcg_at_10"] == pytest.approx(max(scores.values()))
    assert found.best_val_ndcg_at_10 >= found.base_val_ndcg_at_10
    assert cfg == MFConfig.from_overrides(found.best_sets.split())
    best_runs = [r for r, s in scores.items() if s == max(scores.values())]  # ties: any
    assert cfg.epochs in {ran[r] for r in best_runs}  # the epochs the best one really ran

    runs_before = len(client.search_runs([parent.info.experiment_id]))
    again_cfg, again = tuned_config(settings, MFConfig(), "auto", spark=spark)
    assert again.reused and again.parent_run_id == found.parent_run_id and again_cfg == cfg
    assert len(client.search_runs([parent.info.experiment_id])) == runs_before

    trained = train_shopper(
        settings, cfg, baselines=False, register=False, spark=spark, tuned_by=found.parent_run_id
    )
    assert client.get_run(trained.run_id).data.tags["tuned_by"] == found.parent_run_id
    assert trained.metrics["mf"]["ndcg_at_10"] > trained.metrics["popularity"]["ndcg_at_10"]
