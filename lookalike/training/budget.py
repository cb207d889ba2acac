"""A time-limited search's per-trial time budget: each trial's share of the limit, and the
Keras callback that ends a trial's training when it is spent.

Why: SparkTrials' timeout only cancels trials; without a budget of its own, one slow draw
(many epochs of small batches at a large model) outlasts the whole limit, and a search on 2
cores finished no trial at all. A trial cut short is scored, and reported, with the epochs
it ran: a fair draw at equal time.
"""

from __future__ import annotations

import time
from typing import Any

#: Tag of a trial's nested run whose training the time budget ended early.
CUT_TAG = "lookalike.tune.cut"


def trial_share(limit_seconds: float, trials: int, parallelism: int) -> float:
    """Each trial's share of a search's time limit: the limit times the trials running at
    once, over the trials asked for."""
    return limit_seconds * parallelism / max(trials, 1)


def cut_tags(epochs_ran: int, epochs_asked: int, budget_seconds: float | None) -> dict[str, str]:
    """The tags of a trial's run: ``CUT_TAG`` when the budget ended it before its epochs."""
    if epochs_ran < epochs_asked:
        return {CUT_TAG: f"time budget {budget_seconds}s"}
    return {}


def time_budget(seconds: float) -> Any:
    """A Keras callback that ends training after the epoch past which one more epoch (at the
    mean epoch time so far) would overrun ``seconds``, or inside an epoch that overruns it
    (a partial epoch counts as one). ``fit`` may run once per epoch: one clock for all."""
    import tensorflow as tf

    class TimeBudget(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._supports_tf_logs = True  # the batch hook reads no logs: no per-step copy
            self.start: float | None = None
            self.epochs = 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self.start is not None and time.monotonic() - self.start > seconds:
                self.model.stop_training = True  # one epoch of this draw outlasts its share

        def on_train_begin(self, logs: dict | None = None) -> None:
            if self.start is None:  # `fit` runs once per epoch: the first call starts the clock
                self.start = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epochs += 1
            elapsed = time.monotonic() - (self.start or time.monotonic())
            if elapsed * (self.epochs + 1) / self.epochs > seconds:
                self.model.stop_training = True

    return TimeBudget()
