"""Baselines evaluated beside MF: popularity (in ``evaluate``) and Spark ML ALS (implicit)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

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
