"""Baselines evaluated beside MF: popularity (in ``evaluate``), Spark ML ALS (implicit) and EASE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.shopper.data import Split

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class ALSConfig:
    """Spark ML ALS settings for the implicit-feedback baseline."""

    rank: int = 32
    reg: float = 0.05
    alpha: float = 10.0
    iterations: int = 10
    seed: int = 0

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (logged beside the metrics)."""
        return asdict(self)


def als_factors(
    spark: SparkSession, split: Split, cfg: ALSConfig = ALSConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Implicit ALS (Hu, Koren, Volinsky) on the train pairs, confidence from strength.

    Returns dense (n_users, rank) and (n_items, rank) factors; items without train
    interactions keep zero factors (score 0).
    """
    import pandas as pd
    from pyspark.ml.recommendation import ALS

    frame = pd.DataFrame(
        {
            "u": split.train_users.astype("int32"),
            "i": split.train_items.astype("int32"),
            "r": split.train_strength.astype("float32"),
        }
    )
    df = spark.createDataFrame(frame)
    als = ALS(
        rank=cfg.rank,
        regParam=cfg.reg,
        alpha=cfg.alpha,
        maxIter=cfg.iterations,
        implicitPrefs=True,
        userCol="u",
        itemCol="i",
        ratingCol="r",
        seed=cfg.seed,
        coldStartStrategy="drop",
    )
    model = als.fit(df)
    users = np.zeros((split.n_users, cfg.rank), np.float32)
    items = np.zeros((split.n_items, cfg.rank), np.float32)
    for target, factors in ((users, model.userFactors), (items, model.itemFactors)):
        pdf = factors.toPandas()
        if len(pdf):
            target[pdf["id"].to_numpy()] = np.stack(pdf["features"].to_numpy()).astype(np.float32)
    return users, items


#: EASE keeps a dense item x item matrix (and inverts one): 20,000 items are 1.6 GB of
#: float32 each; larger catalogues are refused rather than swapping the machine.
EASE_MAX_ITEMS = 20_000


class TooManyItems(ValueError):
    """A closed-form item x item model asked for more items than it can hold."""


def ease_weights(split: Split, reg: float = 250.0) -> np.ndarray:
    """EASE (Steck 2019): the item x item weights ``B`` minimising
    ``||X - XB||^2 + reg ||B||^2`` with a zero diagonal, in closed form from the binary
    train matrix ``X``: ``P = (X'X + reg I)^-1``, ``B = -P / diag(P)``, ``diag(B) = 0``."""
    n = split.n_items
    if n > EASE_MAX_ITEMS:
        raise TooManyItems(f"EASE: {n:,} items, at most {EASE_MAX_ITEMS:,} (dense {n}x{n})")
    x = _binary_matrix(split)
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices(n)] += reg
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices(n)] = 0.0
    return b.astype(np.float32)


def ease_scorer(split: Split, weights: np.ndarray) -> Any:
    """Scores ``X_u B`` for user rows (``rank_metrics``' ScoreFn)."""
    x = _binary_matrix(split)
    return lambda rows: np.asarray(x[rows] @ weights)


def _binary_matrix(split: Split) -> Any:
    """The users x items 0/1 train matrix (scipy CSR)."""
    from scipy.sparse import csr_matrix

    ones = np.ones(len(split.train_users), np.float32)
    x = csr_matrix((ones, (split.train_users, split.train_items)), (split.n_users, split.n_items))
    x.data[:] = 1.0  # a pair listed twice is still one positive
    return x


def validation_split(split: Split) -> Split:
    """The same leave-last-out rule inside train: each user's newest train item (train rows
    are ordered by first interaction) becomes the validation item, for users with >= 2 train
    items. Baselines and models are tuned on it; the test items are never seen."""
    order = np.argsort(split.train_users, kind="stable")  # by user, first-interaction order kept
    users, items, strength = (
        a[order] for a in (split.train_users, split.train_items, split.train_strength)
    )
    last = np.ones(len(users), dtype=bool)
    last[:-1] = users[1:] != users[:-1]  # rows are grouped by user: its last row
    counts = np.bincount(users, minlength=split.n_users)
    held = last & (counts[users] >= 2)
    val_items = np.full(split.n_users, -1, dtype=np.int32)
    val_items[users[held]] = items[held]
    return Split(
        user_ids=split.user_ids,
        item_ids=split.item_ids,
        train_users=users[~held],
        train_items=items[~held],
        train_strength=strength[~held],
        test_items=val_items,
        last_items=split.last_items,
        events=split.events,
    )


#: The tuned baselines' grids (small on purpose: each ALS fit is a Spark job).
ALS_GRID = {"rank": (32, 64), "reg": (0.01, 0.1, 1.0), "alpha": (1.0, 10.0, 40.0)}
EASE_GRID = (50.0, 100.0, 250.0, 500.0, 1000.0)


def tune_als(
    spark: SparkSession, split: Split, grid: dict[str, Sequence[float]] = ALS_GRID
) -> tuple[ALSConfig, list[dict[str, Any]]]:
    """The ALS settings with the best validation NDCG@10 (``validation_split``: the test
    items are never seen), and every setting's score."""
    import itertools

    from lookalike.shopper.evaluate import factor_scorer, rank_metrics

    val = validation_split(split)
    tried = []
    for rank, reg, alpha in itertools.product(grid["rank"], grid["reg"], grid["alpha"]):
        cfg = ALSConfig(rank=int(rank), reg=float(reg), alpha=float(alpha))
        users, items = als_factors(spark, val, cfg)
        ndcg = rank_metrics(factor_scorer(users, items), val, sampled=0)["ndcg_at_10"]
        tried.append(cfg.to_dict() | {"val_ndcg_at_10": round(ndcg, 5)})
    best = max(tried, key=lambda t: t["val_ndcg_at_10"])
    return ALSConfig(**{k: best[k] for k in ("rank", "reg", "alpha", "iterations", "seed")}), tried


def tune_ease(
    split: Split, regs: Sequence[float] = EASE_GRID
) -> tuple[float, list[dict[str, Any]]]:
    """The EASE regularisation with the best validation NDCG@10, and every one's score."""
    from lookalike.shopper.evaluate import rank_metrics

    val = validation_split(split)
    tried = []
    for reg in regs:
        scorer = ease_scorer(val, ease_weights(val, reg))
        ndcg = rank_metrics(scorer, val, sampled=0)["ndcg_at_10"]
        tried.append({"reg": float(reg), "val_ndcg_at_10": round(ndcg, 5)})
    return max(tried, key=lambda t: t["val_ndcg_at_10"])["reg"], tried
