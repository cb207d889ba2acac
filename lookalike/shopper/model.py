"""Neural matrix factorisation (TF Keras) on implicit feedback, and its numpy twin for scoring.

``score(u, i) = (p_u * w_g) . q_i + b_i + b`` (GMF; ``w_g`` = 1 and ``b`` = 0 without a head),
plus, with ``mlp`` layers (NeuMF, He et al. 2017), ``w_m . MLP([p'_u, q'_i])``. Trained with
binary cross-entropy on each positive pair and ``negatives`` uniformly sampled unobserved
items, re-drawn every epoch. ``Factors`` holds the trained weights as numpy arrays: the service
and the evaluation score without TensorFlow, and the GMF part is an inner product, so a
maximum-inner-product index over ``[q_i, b_i]`` retrieves candidates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from lookalike.shopper.data import Split
from lookalike.shopper.factors import Factors
from lookalike.training.epochs import epoch_order, fit_epoch


class ShopperConfigError(ValueError):
    """A bad training setting; the message names it."""


@dataclass(frozen=True)
class MFConfig:
    """Matrix factorisation settings (GMF, optional NeuMF head, visual item features)."""

    factors: int = 32
    mlp: tuple[int, ...] = ()  # e.g. (64, 32): NeuMF head; () = plain MF
    negatives: int = 4
    epochs: int = 12
    batch_size: int = 2048
    learning_rate: float = 0.002
    l2: float = 1e-6
    visual: int = 1  # 1: item vectors = free embedding + a learned projection of the visual one
    seed: int = 0
    # bce: each positive against ``negatives`` sampled items (binary cross-entropy; the NeuMF
    # head needs it). softmax: each positive against every item (or ``sampled`` uniformly
    # drawn items per batch when the catalogue is larger), the user vector plus the items of
    # their ``context`` latest interactions (0: none), as in FISM/FPMC.
    loss: str = "bce"
    context: int = 0
    sampled: int = 2048

    def __post_init__(self) -> None:
        for name in ("factors", "negatives", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ShopperConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.visual not in (0, 1):
            raise ShopperConfigError(f"visual: must be 0 or 1, got {self.visual}")
        if self.learning_rate <= 0:
            raise ShopperConfigError(f"learning_rate: must be > 0, got {self.learning_rate}")
        if any(int(w) < 1 for w in self.mlp):
            raise ShopperConfigError(f"mlp: layer widths must be >= 1, got {list(self.mlp)}")
        if self.loss not in ("bce", "softmax"):
            raise ShopperConfigError(f"loss: must be bce or softmax, got {self.loss!r}")
        if self.context < 0 or self.sampled < 1:
            raise ShopperConfigError("context: must be >= 0 and sampled >= 1")
        if self.loss == "softmax" and self.mlp:
            raise ShopperConfigError("mlp: the NeuMF head trains with loss=bce only")
        if self.loss == "bce" and self.context:
            raise ShopperConfigError("context: needs loss=softmax")

    def replace(self, **changes: Any) -> MFConfig:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (MLflow parameters, the bundle manifest)."""
        return asdict(self) | {"mlp": list(self.mlp)}

    @classmethod
    def from_overrides(cls, pairs: Sequence[str] = ()) -> MFConfig:
        """``key=value`` strings (CLI ``--set``); unknown keys and bad values name the key."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ShopperConfigError(
                    f"{key or pair!r}: unknown setting (one of {sorted(known)})"
                )
            try:
                if key == "mlp":
                    values[key] = tuple(int(x) for x in raw.replace(",", " ").split())
                elif key in ("learning_rate", "l2"):
                    values[key] = float(raw)
                elif key == "loss":
                    values[key] = raw.strip()
                else:
                    values[key] = int(raw)
            except ValueError:
                raise ShopperConfigError(f"{key}: {raw!r} is not a valid value") from None
        return cls(**values)


def build_model(
    cfg: MFConfig, n_users: int, n_items: int, item_features: np.ndarray | None = None
) -> Any:
    """GMF (+ optional NeuMF head). With ``item_features`` (row-aligned visual vectors) and
    ``cfg.visual``, an item's GMF vector is its free embedding plus a learned projection of
    its visual vector: items with few interactions borrow from items that look alike."""
    import tensorflow as tf

    import lookalike  # noqa: F401  (legacy Keras switch)

    k = tf.keras
    reg = k.regularizers.l2(cfg.l2) if cfg.l2 > 0 else None
    init = k.initializers.RandomNormal(stddev=0.01, seed=cfg.seed)
    u_in = k.Input(shape=(), dtype="int32", name="user")
    i_in = k.Input(shape=(), dtype="int32", name="item")
    p = k.layers.Embedding(
        n_users,
        cfg.factors,
        embeddings_initializer=init,
        embeddings_regularizer=reg,
        name="user_gmf",
    )(u_in)
    q = k.layers.Embedding(
        n_items,
        cfg.factors,
        embeddings_initializer=init,
        embeddings_regularizer=reg,
        name="item_gmf",
    )(i_in)
    if item_features is not None and cfg.visual:
        feats = k.layers.Embedding(
            n_items, item_features.shape[1], trainable=False, name="item_visual"
        )(i_in)
        proj = k.layers.Dense(
            cfg.factors, use_bias=False, kernel_initializer=init, name="visual_proj"
        )(feats)
        q = k.layers.Add(name="item_vec")([q, proj])
    bias = k.layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="item_bias")(i_in)
    gmf = k.layers.Multiply(name="gmf")([p, q])
    if not cfg.mlp:
        logit = k.layers.Lambda(lambda t: tf.reduce_sum(t, axis=-1), name="dot")(gmf)
    else:
        half = max(1, cfg.mlp[0] // 2)
        pm = k.layers.Embedding(
            n_users, half, embeddings_initializer=init, embeddings_regularizer=reg, name="user_mlp"
        )(u_in)
        qm = k.layers.Embedding(
            n_items, half, embeddings_initializer=init, embeddings_regularizer=reg, name="item_mlp"
        )(i_in)
        h = k.layers.Concatenate()([pm, qm])
        for j, width in enumerate(cfg.mlp):
            h = k.layers.Dense(width, activation="relu", name=f"dense{j}")(h)
        both = k.layers.Concatenate(name="neumf")([gmf, h])
        logit = k.layers.Flatten()(k.layers.Dense(1, name="out")(both))
    logit = k.layers.Add(name="logit")([logit, k.layers.Flatten()(bias)])
    model = k.Model([u_in, i_in], logit, name="neumf" if cfg.mlp else "mf")
    if item_features is not None and cfg.visual:
        model.get_layer("item_visual").set_weights([np.asarray(item_features, np.float32)])
    return model


def factors_from_model(cfg: MFConfig, model: Any, split: Split | None = None) -> Factors:
    """The trained Keras model's weights as plain ``Factors`` (the visual tower folded into the
    item vectors; for ``loss=softmax`` each user's latest items from ``split`` folded into
    their vector), so a bundle needs no TensorFlow to answer."""
    if cfg.loss == "softmax":
        from lookalike.shopper.softmax import softmax_factors

        if split is None:
            raise ValueError("factors_from_model: loss=softmax needs the split")
        return softmax_factors(cfg, model, split)

    def w(name: str) -> list[np.ndarray]:
        return [np.asarray(x, np.float32) for x in model.get_layer(name).get_weights()]

    item_bias = w("item_bias")[0][:, 0]
    item_gmf = w("item_gmf")[0]
    names = {layer.name for layer in model.layers}
    if "visual_proj" in names:  # fold the visual tower into plain item vectors
        item_gmf = item_gmf + w("item_visual")[0] @ w("visual_proj")[0]
    if not cfg.mlp:
        return Factors(
            user_gmf=w("user_gmf")[0],
            item_gmf=item_gmf,
            item_bias=item_bias,
            w_gmf=np.ones(cfg.factors, np.float32),
        )
    out_w, out_b = w("out")
    return Factors(
        user_gmf=w("user_gmf")[0],
        item_gmf=item_gmf,
        item_bias=item_bias,
        w_gmf=out_w[: cfg.factors, 0],
        out_bias=float(out_b[0]),
        user_mlp=w("user_mlp")[0],
        item_mlp=w("item_mlp")[0],
        dense=[tuple(w(f"dense{j}")) for j in range(len(cfg.mlp))],  # type: ignore[misc]
        w_mlp=out_w[cfg.factors :, 0],
    )


def _negatives(
    users: np.ndarray, n_items: int, positives: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One uniformly drawn unobserved item per entry of ``users`` (two redraws of collisions)."""
    items = rng.integers(0, n_items, size=len(users), dtype=np.int64)
    for _ in range(2):
        clash = np.isin(users.astype(np.int64) * n_items + items, positives)
        if not clash.any():
            break
        items[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return items.astype(np.int32)


def train_mf(
    cfg: MFConfig,
    split: Split,
    *,
    shard: tuple[int, int] = (0, 1),
    wrap_optimizer: Callable[[Any], Any] | None = None,
    learning_rate_scale: float = 1.0,
    callbacks: Sequence[Any] = (),
    epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    item_features: np.ndarray | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Train on ``split``'s positives (every ``size``-th one from ``rank`` for Horovod ranks).

    Every rank runs the same number of steps per epoch (the shard size all ranks reach,
    rounded down to whole batches), so collective gradient averaging never waits forever.
    """
    import tensorflow as tf

    import lookalike  # noqa: F401

    if len(split.train_users) == 0:
        raise ShopperConfigError("no training pairs: every user has a single item")
    tf.keras.utils.set_random_seed(cfg.seed)
    if item_features is not None and len(item_features) != split.n_items:
        raise ShopperConfigError(
            f"item_features: {len(item_features)} rows for {split.n_items} items"
        )
    if cfg.loss == "softmax":
        from lookalike.shopper.softmax import train_softmax

        train = train_softmax
    else:
        train = _train_bce
    return train(
        cfg,
        split,
        shard=shard,
        wrap_optimizer=wrap_optimizer,
        learning_rate_scale=learning_rate_scale,
        callbacks=callbacks,
        epoch_end=epoch_end,
        item_features=item_features,
    )


def _train_bce(
    cfg: MFConfig,
    split: Split,
    *,
    shard: tuple[int, int],
    wrap_optimizer: Callable[[Any], Any] | None,
    learning_rate_scale: float,
    callbacks: Sequence[Any],
    epoch_end: Callable[[int, dict[str, float]], None] | None,
    item_features: np.ndarray | None,
) -> tuple[Any, dict[str, list[float]]]:
    """``train_mf`` for ``loss=bce``: each positive beside ``negatives`` sampled items."""
    import tensorflow as tf

    rank, size = shard
    n_pos = len(split.train_users)
    model = build_model(cfg, split.n_users, split.n_items, item_features)
    opt = tf.keras.optimizers.Adam(cfg.learning_rate * learning_rate_scale)
    if wrap_optimizer is not None:
        opt = wrap_optimizer(opt)
    model.compile(optimizer=opt, loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    mine = np.arange(rank, n_pos, size)
    pu, pi = split.train_users[mine], split.train_items[mine]
    positives = np.unique(split.train_users.astype(np.int64) * split.n_items + split.train_items)
    rows = (n_pos // size) * (1 + cfg.negatives)
    batch = min(cfg.batch_size, rows)
    steps = max(1, rows // batch)
    rng = np.random.default_rng(cfg.seed + 1000 * rank)
    history: dict[str, list[float]] = {"loss": []}
    for epoch in range(cfg.epochs):
        nu = np.repeat(pu, cfg.negatives)
        ni = _negatives(nu, split.n_items, positives, rng)
        u = np.concatenate([pu, nu])
        i = np.concatenate([pi, ni])
        y = np.concatenate([np.ones(len(pu), np.float32), np.zeros(len(nu), np.float32)])
        order = epoch_order(len(u), steps, batch, rng)
        x = {"user": u[order], "item": i[order]}
        if fit_epoch(model, x, y[order], batch, callbacks, epoch, history, epoch_end):
            break
    return model, history


def config_json(cfg: MFConfig) -> str:
    """The settings as canonical JSON (sorted keys: equal configs give equal strings)."""
    return json.dumps(cfg.to_dict(), sort_keys=True)
