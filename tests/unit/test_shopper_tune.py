"""The shopper search space: every point is a valid MFConfig, the nested loss choice is
lifted, and the best point round-trips through ``shopper train --sets``."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.shopper.model import MFConfig
from lookalike.shopper.tune import as_sets, flatten, search_space


def test_every_point_of_the_space_is_a_valid_config():
    from hyperopt.pyll.stochastic import sample

    base = MFConfig()
    space = search_space(base)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        params = flatten(sample(space, rng=rng))
        cfg = base.replace(**params)  # raises ShopperConfigError on a bad combination
        assert cfg.epochs in (base.epochs, 2 * base.epochs)
        assert cfg.batch_size in (256, base.batch_size)
        assert 1e-7 <= cfg.l2 <= 1e-4 and 5e-4 <= cfg.learning_rate <= 5e-3
        if cfg.loss == "bce":
            assert cfg.context == 0 and "sampled" not in params
        seen.add((cfg.loss, cfg.context))
    assert seen == {("bce", 0), ("softmax", 0), ("softmax", 3), ("softmax", 5)}


def test_a_softmax_base_still_gets_bce_points_without_context():
    base = MFConfig(loss="softmax", context=5)
    cfg = base.replace(**flatten({"loss": {"loss": "bce", "context": 0}, "factors": 64}))
    assert (cfg.loss, cfg.context, cfg.factors) == ("bce", 0, 64)


@pytest.mark.parametrize(
    "point",
    [
        {"loss": {"loss": "softmax", "context": 3, "sampled": 500}, "l2": 3.14159e-6},
        {"loss": {"loss": "bce", "context": 0}, "learning_rate": 0.0012345, "epochs": 24.0},
    ],
)
def test_best_params_round_trip_through_sets(point):
    params = flatten(point)
    assert MFConfig.from_overrides(as_sets(params).split()) == MFConfig().replace(**params)
