"""Softmax matrix factorisation with the shopper's latest items (``MFConfig.loss=softmax``).

``score(u, i) = (p_u + sum_l w_l c_{j_l}) . q_i + b_i``, where ``j_1..j_L`` are the user's
``context`` latest items before the one being predicted (FISM/FPMC-style), trained with
softmax cross-entropy of each positive against every item, or against ``sampled`` items drawn
uniformly per batch when the catalogue is larger (``tf.nn.sampled_softmax_loss``, accidental
hits removed). With the visual tower, ``q_i`` is the free embedding plus a learned projection
of the item's visual vector, as in the BCE model.

At export the user's own latest train items are folded into their vector, so the bundle holds
plain ``Factors`` (an inner product per item) and serving does not change. Measured in
``bench/shopper.py`` (see docs/shopper.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lookalike.shopper.data import Split


def sequence_context(split: Split, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(per train row: the ``length`` train items the user met just before it, newest first;
    per user: their ``length`` latest train items), padded with ``n_items``. Train rows are in
    each user's first-interaction order (``prepare``), which is what "before" means."""
    pad = split.n_items
    n = len(split.train_users)
    width = max(length, 1)
    rows = np.full((n, width), pad, np.int32)
    users = np.full((split.n_users, width), pad, np.int32)
    if length == 0 or n == 0:
        return rows, users
    order = np.argsort(split.train_users, kind="stable")
    u, items = split.train_users[order], split.train_items[order]
    starts = np.r_[0, np.flatnonzero(u[1:] != u[:-1]) + 1]
    position = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    for back in range(1, length + 1):
        has = np.flatnonzero(position >= back)
        rows[order[has], back - 1] = items[has - back]
    ends = np.r_[starts[1:], n]
    for back in range(1, length + 1):
        has = ends - back >= starts
        users[u[starts[has]], back - 1] = items[ends[has] - back]
    return rows, users


def build_softmax_model(
    cfg: Any, n_users: int, n_items: int, item_features: np.ndarray | None = None
) -> Any:
    """The Keras model: inputs ``user``, ``context`` and ``item`` (the positive); it adds its
    own loss (compile without one) and outputs the user vectors."""
    import tensorflow as tf

    import lookalike  # noqa: F401  (legacy Keras switch)

    k = tf.keras
    width = max(cfg.context, 1)
    visual = item_features.shape[1] if item_features is not None and cfg.visual else None
    user = k.Input(shape=(), dtype="int32", name="user")
    context = k.Input(shape=(width,), dtype="int32", name="context")
    item = k.Input(shape=(), dtype="int32", name="item")
    layer = _softmax_layer(cfg, n_users, n_items, visual)
    model = k.Model([user, context, item], layer([user, context, item]), name="softmax_mf")
    if visual:
        layer.item_visual.assign(np.asarray(item_features, np.float32))
    return model


def _softmax_layer(cfg: Any, n_users: int, n_items: int, visual: int | None) -> Any:
    """The layer holding every weight; ``visual``: the visual vectors' width, or None."""
    import tensorflow as tf

    k = tf.keras
    reg = k.regularizers.l2(cfg.l2) if cfg.l2 > 0 else None
    init = k.initializers.RandomNormal(stddev=0.05, seed=cfg.seed)
    width = max(cfg.context, 1)

    class SoftmaxMF(k.layers.Layer):
        def build(self, input_shape: Any) -> None:
            def table(name: str, rows: int, cols: int = cfg.factors, **kw: Any) -> Any:
                kw = {"initializer": init, "regularizer": reg} | kw
                return self.add_weight(name=name, shape=(rows, cols), **kw)

            self.user_gmf = table("user_gmf", n_users)
            self.item_gmf = table("item_gmf", n_items)
            self.context_items = table("context_items", n_items + 1)  # the last row: padding
            self.context_weights = self.add_weight(
                name="context_weights", shape=(width,), initializer="ones"
            )
            self.item_bias = self.add_weight(
                name="item_bias", shape=(n_items,), initializer="zeros"
            )
            if visual:
                self.item_visual = table(
                    "item_visual",
                    n_items,
                    visual,
                    initializer="zeros",
                    regularizer=None,
                    trainable=False,
                )
                self.visual_proj = table("visual_proj", visual, regularizer=None)

        def items(self) -> Any:
            if visual:
                return self.item_gmf + tf.matmul(self.item_visual, self.visual_proj)
            return self.item_gmf

        def call(self, inputs: Any, training: Any = None) -> Any:
            user, context, item = inputs
            vec = tf.gather(self.user_gmf, user)
            if cfg.context:
                mask = tf.cast(tf.not_equal(context, n_items), tf.float32)
                weights = (mask * self.context_weights)[..., None]
                vec = vec + tf.reduce_sum(tf.gather(self.context_items, context) * weights, 1)
            self.add_loss(_softmax_loss(vec, self.items(), self.item_bias, item, cfg, n_items))
            return vec

    return SoftmaxMF(name="softmax_mf")


def _softmax_loss(vec: Any, items: Any, bias: Any, positive: Any, cfg: Any, n_items: int) -> Any:
    """Mean softmax cross-entropy of each positive: exact over every item when there are at
    most ``cfg.sampled`` of them, else against ``cfg.sampled`` uniform draws per batch."""
    import tensorflow as tf

    if n_items <= cfg.sampled:
        logits = tf.matmul(vec, items, transpose_b=True) + bias[None, :]
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positive, logits=logits)
        )
    labels = tf.cast(positive, tf.int64)[:, None]
    draws = tf.random.uniform_candidate_sampler(
        labels, 1, cfg.sampled, unique=True, range_max=n_items
    )
    return tf.reduce_mean(
        tf.nn.sampled_softmax_loss(
            weights=items,
            biases=bias,
            labels=labels,
            inputs=vec,
            num_sampled=cfg.sampled,
            num_classes=n_items,
            sampled_values=draws,
            remove_accidental_hits=True,
        )
    )


def train_softmax(
    cfg: Any,
    split: Split,
    *,
    shard: tuple[int, int] = (0, 1),
    wrap_optimizer: Callable[[Any], Any] | None = None,
    learning_rate_scale: float = 1.0,
    callbacks: Sequence[Any] = (),
    epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    item_features: np.ndarray | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """``train_mf`` for ``loss=softmax``: positives only (the softmax brings the negatives),
    every rank the same number of steps per epoch."""
    import tensorflow as tf

    from lookalike.training.epochs import epoch_order, fit_epoch

    rank, size = shard
    n_pos = len(split.train_users)
    model = build_softmax_model(cfg, split.n_users, split.n_items, item_features)
    opt = tf.keras.optimizers.Adam(cfg.learning_rate * learning_rate_scale)
    model.compile(optimizer=wrap_optimizer(opt) if wrap_optimizer else opt)
    context, _ = sequence_context(split, cfg.context)
    mine = np.arange(rank, n_pos, size)
    rows = n_pos // size
    batch = min(cfg.batch_size, max(rows, 1))
    steps = max(1, rows // batch)
    rng = np.random.default_rng(cfg.seed + 1000 * rank)
    history: dict[str, list[float]] = {"loss": []}
    for epoch in range(cfg.epochs):
        order = mine[epoch_order(len(mine), steps, batch, rng)]
        x = {
            "user": split.train_users[order],
            "context": context[order],
            "item": split.train_items[order],
        }
        if fit_epoch(model, x, None, batch, callbacks, epoch, history, epoch_end):
            break
    return model, history


def softmax_factors(cfg: Any, model: Any, split: Split) -> Any:
    """Plain ``Factors``: each user's vector with their latest train items folded in, item
    vectors with the visual tower folded in."""
    from lookalike.shopper.factors import Factors

    layer = model.get_layer("softmax_mf")
    users = np.asarray(layer.user_gmf.numpy(), np.float32)
    if cfg.context:
        _, latest = sequence_context(split, cfg.context)
        table = np.asarray(layer.context_items.numpy(), np.float32)
        table[-1] = 0.0  # padding adds nothing
        weights = np.asarray(layer.context_weights.numpy(), np.float32)
        users = users + np.einsum("ulf,l->uf", table[latest], weights)
    return Factors(
        user_gmf=users.astype(np.float32),
        item_gmf=np.asarray(layer.items().numpy(), np.float32),
        item_bias=np.asarray(layer.item_bias.numpy(), np.float32),
        w_gmf=np.ones(cfg.factors, np.float32),
    )
