"""An epoch loop Keras does not give: rows put in order by the caller (the same number of
steps on every Horovod rank), one ``fit`` per epoch, callbacks that may stop it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def epoch_order(n: int, steps: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """``steps * batch`` row indices of ``n`` rows in a fresh random order; a tiny shard
    repeats rows, so every Horovod rank runs the same number of steps."""
    order = rng.permutation(n)[: steps * batch]
    if len(order) < steps * batch:
        order = np.resize(order, steps * batch)
    return order


def fit_epoch(
    model: Any,
    x: dict[str, np.ndarray],
    y: np.ndarray | None,
    batch: int,
    callbacks: Sequence[Any],
    epoch: int,
    history: dict[str, list[float]],
    epoch_end: Callable[[int, dict[str, float]], None] | None,
) -> bool:
    """One epoch over rows already in order; its loss goes to ``history`` and ``epoch_end``.
    True when a callback asked training to stop (``model.stop_training``, as Keras' own
    multi-epoch ``fit`` honours it), so the caller's epoch loop ends there."""
    h = model.fit(
        x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=list(callbacks)
    )
    loss = float(h.history["loss"][-1])
    history["loss"].append(loss)
    if epoch_end is not None:
        epoch_end(epoch, {"loss": loss})
    return bool(getattr(model, "stop_training", False))
