"""Shopper recommendations without Spark or MLflow: simulator, validation, split, metrics,
the numpy twin of the Keras model, training, and the bundle's answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lookalike.shopper.data import EmptyInteractions, prepare
from lookalike.shopper.evaluate import popularity_scorer, rank_metrics
from lookalike.shopper.items import ItemSpace
from lookalike.shopper.model import MFConfig, ShopperConfigError
from lookalike.shopper.simulator import SimConfig, simulate

N_ITEMS = 400


@pytest.fixture(scope="module")
def items() -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    ids = [f"it{j:04d}" for j in range(N_ITEMS)]
    cats = np.arange(N_ITEMS) % 8
    # items of a category share a direction: "visual style" the simulator can use
    centers = rng.normal(size=(8, 16))
    vectors = (centers[cats] + 0.7 * rng.normal(size=(N_ITEMS, 16))).astype(np.float32)
    return ids, cats, vectors


@pytest.fixture(scope="module")
def events(items) -> pa.Table:
    return simulate(SimConfig(users=300, events=24_000, seed=3), *items)


def test_simulator_is_reproducible_by_seed(items):
    cfg = SimConfig(users=40, events=2_000, seed=11)
    a, b = simulate(cfg, *items), simulate(cfg, *items)
    assert a.equals(b)
    c = simulate(SimConfig(users=40, events=2_000, seed=12), *items)
    assert not a.equals(c)


def test_simulated_events_look_like_shopping(events, items):
    df = events.to_pandas()
    assert set(df["item_id"]) <= set(items[0])
    counts = df["event_type"].value_counts()
    assert counts["view"] > counts["add_to_cart"] > counts["purchase"] > 0
    # popularity skew: the top 10% of items get far more than 10% of the events
    per_item = df["item_id"].value_counts().to_numpy()
    assert per_item[: N_ITEMS // 10].sum() > 0.2 * len(df)  # twice the uniform share
    # repeat views, and several sessions per active user
    assert df.duplicated(["user_id", "item_id"]).mean() > 0.2
    assert df.groupby("user_id")["session_id"].nunique().median() > 1
    # taste: a user's events concentrate on few categories
    cat_of = dict(zip(items[0], items[1], strict=True))
    df["cat"] = df["item_id"].map(cat_of)
    top_share = df.groupby("user_id")["cat"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    assert top_share.median() > 0.3  # uniform taste would be 1/8


def test_validate_rejects_bad_rows_with_reasons():
    from lookalike.shopper.interactions import validate

    raw = pd.DataFrame(
        {
            "user_id": ["u1", "", "u3", "u4", "u5", "bad user", "u7", "x" * 200],
            "item_id": ["a", "a", "a", "nope", "a", "a", "a", "a"],
            "event_type": ["view", "view", "click", "view", "purchase", "view", "view", "view"],
            "ts": ["2026-01-01T10:00:00Z", "1767261600", "1767261600", "1767261600", "soon"]
            + ["1767261600"] * 3,
        }
    )
    good, rejects = validate(raw, "events", {"a"})
    assert good["user_id"].tolist() == ["u1", "u7"]
    assert good["event_id"].nunique() == 2
    reasons = dict(zip(rejects["row"], rejects["reason"], strict=True))
    assert reasons[2] == "missing user_id"
    assert reasons[3].startswith("event_type not one of")
    assert reasons[4] == "unknown item (not in the catalogue)"
    assert reasons[5].startswith("ts is not")
    assert reasons[6].startswith("malformed user_id")
    assert reasons[8].startswith("user_id longer than")


def test_movielens_files_are_read_as_views_with_ratings(tmp_path: Path):
    from lookalike.shopper.interactions import _read_raw, validate

    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::x::978302109\n")
    frame, fmt = _read_raw(tmp_path / "ratings.dat", (tmp_path / "ratings.dat").read_bytes())
    assert fmt == "movielens"
    good, rejects = validate(frame, fmt, None)
    assert good["event_type"].tolist() == ["view"] and good["rating"].tolist() == [5.0]
    assert rejects["reason"].tolist() == ["rating is not a number"]


def test_leave_last_out_split():
    ts = pa.array([1, 2, 3, 4, 5, 6, 7], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    events = pa.table(
        {
            "user_id": ["a", "a", "a", "a", "b", "c", "c"],
            "item_id": ["i1", "i2", "i1", "i3", "i1", "i2", "i2"],
            "event_type": ["view", "view", "purchase", "view", "view", "view", "view"],
            "ts": ts,
        }
    )
    split = prepare(events, ["i1", "i2", "i3", "i4"])
    assert split.user_ids == ["a", "b", "c"] and split.n_items == 4
    # a: first-seen order i1, i2, i3 -> i3 held out; b and c have one distinct item: no test
    assert split.test_items.tolist() == [2, -1, -1]
    pairs = sorted(zip(split.train_users.tolist(), split.train_items.tolist(), strict=True))
    assert pairs == [(0, 0), (0, 1), (1, 0), (2, 1)]
    strength = dict(
        zip(
            zip(split.train_users, split.train_items, strict=True),
            split.train_strength,
            strict=True,
        )
    )
    assert strength[(0, 0)] > strength[(0, 1)]  # viewed and purchased beats viewed
    assert split.last_items.tolist() == [2, 0, 1]
    with pytest.raises(EmptyInteractions):
        prepare(events, ["zz"])


def test_rank_metrics_perfect_and_constant_scorers(events, items):
    split = prepare(events, items[0])

    def perfect(rows):
        s = np.zeros((len(rows), split.n_items), np.float32)
        s[np.arange(len(rows)), split.test_items[rows]] = 1.0
        return s

    best = rank_metrics(perfect, split)
    assert best["hr_at_10"] == best["ndcg_at_10"] == best["sampled_hr_at_10"] == 1.0
    flat = rank_metrics(lambda rows: np.zeros((len(rows), split.n_items)), split)
    assert flat["hr_at_10"] == 0.0  # ties count against the model
    pop = rank_metrics(popularity_scorer(split), split)
    assert 0.0 < pop["ndcg_at_10"] < 1.0 and 0.0 < pop["item_coverage"] < 0.1


def test_config_errors_name_the_field():
    with pytest.raises(ShopperConfigError, match="factors"):
        MFConfig(factors=0)
    with pytest.raises(ShopperConfigError, match="unknown"):
        MFConfig.from_overrides(["wat=3"])
    assert MFConfig.from_overrides(["mlp=16,8", "epochs=2"]).mlp == (16, 8)


@pytest.fixture(scope="module")
def trained(events, items):
    from lookalike.shopper.model import factors_from_model, train_mf

    split = prepare(events, items[0])
    cfg = MFConfig(factors=16, epochs=6, batch_size=512, learning_rate=0.01, mlp=(16, 8))
    vectors = items[2] / np.linalg.norm(items[2], axis=1, keepdims=True)
    model, history = train_mf(cfg, split, item_features=vectors)  # with the visual tower
    return split, cfg, model, history, factors_from_model(cfg, model)


def test_numpy_twin_scores_like_keras(trained):
    _, _, model, _, factors = trained
    users = np.array([0, 1, 2, 2], np.int32)
    its = np.array([0, 5, 7, 399], np.int32)
    keras = model.predict([users, its], verbose=0).ravel()
    ours = np.array(
        [
            factors.scores(np.array([u]), np.array([i]))[0, 0]
            for u, i in zip(users, its, strict=True)
        ]
    )
    np.testing.assert_allclose(ours, keras, rtol=1e-4, atol=1e-4)


def test_mf_beats_popularity_on_small_data(trained):
    split, _, _, history, factors = trained
    assert history["loss"][-1] < history["loss"][0]
    mf = rank_metrics(lambda rows: factors.scores(rows), split)
    pop = rank_metrics(popularity_scorer(split), split)
    assert mf["ndcg_at_10"] > pop["ndcg_at_10"] * 1.2, (mf, pop)


@pytest.fixture(scope="module")
def bundle(trained, items, tmp_path_factory):
    from lookalike.shopper.bundle import ShopperRecommender, build_bundle

    split, cfg, _, _, factors = trained
    ids, cats, vectors = items
    space = ItemSpace(
        item_ids=ids,
        categories=cats.astype(np.int32),
        category_names=[f"cat{c}" for c in cats],
        vectors=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
        source="test",
    )
    out = tmp_path_factory.mktemp("shopper-bundle") / "bundle"
    build_bundle(
        out,
        factors,
        split,
        space,
        config=cfg.to_dict(),
        interactions_version=0,
        metrics={},
        min_recall=0.95,
    )
    moved = out.with_name("moved")  # a bundle must not depend on where it was built
    out.rename(moved)
    return split, ShopperRecommender(moved), moved


def test_recommendations_exclude_what_the_shopper_saw(bundle):
    split, rec, _ = bundle
    user = split.user_ids[5]
    hits, mode = rec.recommend(user, 10)
    assert mode == "personal" and len(hits) == 10
    seen = {rec.item_ids[j] for j in rec.seen(rec.user_row[user])}
    assert not seen & {h.item_id for h in hits}
    again, _ = rec.recommend(user, 10, exclude_seen=False)
    assert seen & {h.item_id for h in again}  # their favourites come back when allowed
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_unknown_shopper_gets_popular_and_diverse_items(bundle):
    _, rec, _ = bundle
    hits, mode = rec.recommend("never-seen", 8)
    assert mode == "fallback:popular-diverse" and len(hits) == 8
    assert len({h.category for h in hits}) >= 4  # diverse, not the 8 most popular of one kind
    assert rec.popularity[rec.item_row[hits[0].item_id]] >= np.median(rec.popularity)


def test_blend_pulls_towards_the_last_item(bundle):
    split, rec, _ = bundle
    user = split.user_ids[9]
    row = rec.user_row[user]
    last = rec.last_items[row]
    plain, _ = rec.recommend(user, 10)
    mixed, mode = rec.recommend(user, 10, blend=0.9)
    assert mode == "personal+visual"

    def closeness(hits):
        return float(
            np.mean([rec.visual[rec.item_row[h.item_id]] @ rec.visual[last] for h in hits])
        )

    assert closeness(mixed) > closeness(plain)
    with pytest.raises(ValueError, match="blend"):
        rec.recommend(user, 10, blend=1.5)


def test_damaged_bundle_is_refused(bundle, tmp_path):
    import shutil

    from lookalike.index.scann_index import IndexVersionError
    from lookalike.shopper.bundle import ShopperRecommender

    copy = tmp_path / "copy"
    shutil.copytree(bundle[2], copy)
    with open(copy / "factors.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(IndexVersionError, match=r"factors\.npz"):
        ShopperRecommender(copy)
