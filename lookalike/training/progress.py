"""Progress lines for long work: one line per training epoch, per search trial and (every
minute) per Spark pass, each with what finished, its metric, the seconds so far and an
estimate of the seconds left.

The lines go to the ``lookalike`` loggers (stderr under the command line, so the Airflow
task log too); a Horovod rank, a process with no logging set up, prints them to stderr.
``progress_line`` is the format of epochs and trials (``stage_line`` of Spark passes); the
callbacks only count and time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

Emit = Callable[[str], None]


def eta_seconds(elapsed: float, done: int, total: int | None) -> float | None:
    """Seconds left at the mean rate so far (``elapsed / done`` per unit, parallel units
    included); None before the first unit finished or without a total."""
    if not total or done <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def progress_line(
    what: str,
    done: int,
    total: int | None,
    elapsed: float,
    metrics: Mapping[str, float] | None = None,
    note: str = "",
) -> str:
    """``epoch 3/10: loss 0.4123; 130 s elapsed, about 303 s left`` (``done`` once the last
    unit finished; ``note`` goes after the metrics)."""
    count = f"{what} {done}/{total}" if total else f"{what} {done}"
    shown = ", ".join(f"{k} {_number(v)}" for k, v in (metrics or {}).items())
    detail = "; ".join(p for p in (shown, note) if p)
    eta = eta_seconds(elapsed, done, total)
    if total and done >= total:
        left = "done"
    elif eta is None:
        left = "time left unknown"
    else:
        left = f"about {eta:.0f} s left"
    return f"{count}: {detail + '; ' if detail else ''}{elapsed:.0f} s elapsed, {left}"


def to_stderr(line: str) -> None:
    """Emit for a process without logging set up (a Horovod rank): the line on stderr."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")  # as the command's log lines (logs.FORMAT)
    print(f"{stamp} lookalike.training.progress {line}", file=sys.stderr, flush=True)


def epoch_progress(total_epochs: int | None, emit: Emit | None = None, what: str = "epoch") -> Any:
    """A Keras callback: one line per epoch (its logs: loss first), timed from the first
    epoch, with the seconds left at the mean epoch time so far. ``total_epochs`` None: the
    ``epochs`` of the running ``fit``. A schedule of several ``fit`` calls (``initial_epoch``)
    keeps one clock."""
    import tensorflow as tf

    say = emit or log.info

    class EpochProgress(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.start: float | None = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if self.start is None:
                self.start = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            elapsed = time.monotonic() - (self.start or time.monotonic())
            total = total_epochs or self.params.get("epochs")
            say(progress_line(what, epoch + 1, total, elapsed, _epoch_metrics(logs or {})))

    return EpochProgress()


def epoch_lines(
    total_epochs: int | None, emit: Emit | None = None, what: str = "epoch"
) -> Callable[[int, Mapping[str, Any]], None]:
    """For an epoch loop of one's own (``fit`` once per epoch, where a Keras callback sees
    every epoch as 1/1): call the result at each epoch's end with its index and logs; one
    line as ``epoch_progress`` writes it, timed from this call."""
    say = emit or log.info
    start = time.monotonic()

    def line(epoch: int, logs: Mapping[str, Any]) -> None:
        elapsed = time.monotonic() - start
        say(progress_line(what, epoch + 1, total_epochs, elapsed, _epoch_metrics(logs)))

    return line


def _epoch_metrics(logs: Mapping[str, Any]) -> dict[str, float]:
    """Keras logs as numbers (numpy scalars too), ``loss`` first."""
    out: dict[str, float] = {}
    for k in sorted(logs, key=lambda k: (k != "loss", k)):
        try:
            out[k] = float(logs[k])
        except (TypeError, ValueError):
            continue
    return out


#: Hyperopt's trial states for a trial that ended (done, error, cancelled).
_ENDED = (2, 3, 4)


class TrialProgress:
    """One line per Hyperopt trial that ended, on the driver: its metric (``-loss``), the best
    so far, its own seconds, and the search's seconds so far and left. Called with the
    trials by SparkTrials' dispatcher (``fmin(early_stop_fn=...)``: it never stops the
    search) and once more after ``fmin`` for the trials that ended last or failed."""

    def __init__(
        self, total: int, metric: str, emit: Emit | None = None, what: str = "trial"
    ) -> None:
        self.total, self.metric, self.what = total, metric, what
        self.emit = emit or log.info
        self.start = time.monotonic()
        self.reported: set[int] = set()
        self.best: float | None = None

    def __call__(self, trials: Any, *args: Any) -> tuple[bool, Any]:
        """``early_stop_fn``: report, never stop."""
        self.report(list(trials.trials))
        return False, args

    def report(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """A line for each trial that ended and has no line yet (in trial order)."""
        ended = [t for t in docs if t.get("state") in _ENDED and t["tid"] not in self.reported]
        for t in sorted(ended, key=lambda t: t["tid"]):
            self.reported.add(t["tid"])
            self.emit(self.line(t, time.monotonic() - self.start))

    def line(self, trial: Mapping[str, Any], elapsed: float) -> str:
        """The progress line of one ended trial."""
        result = trial.get("result") or {}
        metrics: dict[str, float] = {}
        if result.get("status") == "ok" and result.get("loss") is not None:
            score = -float(result["loss"])
            self.best = score if self.best is None else max(self.best, score)
            metrics = {self.metric: score, "best": self.best}
            note = ""
        else:
            cause = result.get("error") or ("cancelled" if trial.get("state") == 4 else "failed")
            note = f"failed: {str(cause)[:200]}"
        took = _seconds_between(trial.get("book_time"), trial.get("refresh_time"))
        if took is not None:
            note = f"{note}; " * bool(note) + f"trial took {took:.0f} s"
        return progress_line(self.what, len(self.reported), self.total, elapsed, metrics, note)


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        return max(0.0, (end - start).total_seconds())
    except (TypeError, AttributeError):
        return None


def stage_line(what: str, done: int, total: int, elapsed: float) -> str:
    """A progress line of a running Spark pass: its tasks done, the seconds so far and left
    (at the mean rate so far: tasks of a stage are alike)."""
    eta = eta_seconds(elapsed, done, total)
    left = "time left unknown" if eta is None else f"about {eta:.0f} s left"
    return f"{what}: {done}/{total} tasks; {elapsed:.0f} s elapsed, {left}"


@contextlib.contextmanager
def pass_progress(spark: SparkSession, what: str, every: float = 60.0) -> Iterator[None]:
    """While a Spark pass runs: every ``every`` seconds, one line on the driver with the
    tasks done of the stages running (Spark's status tracker), the seconds so far and left."""
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()
    t0 = time.monotonic()

    def poll() -> None:
        while not stop.wait(every):
            try:
                stages = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
            except Exception:  # the session is stopping: no more lines
                return
            stages = [st for st in stages if st is not None]
            if stages:
                done = sum(st.numCompletedTasks for st in stages)
                total = sum(st.numTasks for st in stages)
                log.info(stage_line(what, done, total, time.monotonic() - t0))

    thread = threading.Thread(target=poll, name="lookalike-pass-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
