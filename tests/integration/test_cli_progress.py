"""Long commands say how far they are, on stderr (the Airflow task's log): one line per
training epoch (Horovod: rank 0's, through its Spark task), per search trial and per
embedding pass, with the seconds so far and left; and no third-party warnings beside them."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Horovod, Hyperopt and an embedding pass, each its own Spark

TINY = ["backbone=seed_cnn", "augment=false", "embedding_size=16", "examples_per_class=4"]


def _lookalike(home, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARN")}
    env |= {"LOOKALIKE_HOME": str(home), "LOOKALIKE_SPARK_DRIVER_MEMORY": "1g"}
    done = subprocess.run(
        [sys.executable, "-m", "lookalike.cli", *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    return done


def _sets(*pairs: str) -> list[str]:
    return [a for p in (*TINY, *pairs) for a in ("--set", p)]


def _lines(stderr: str, pattern: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(pattern, line)]


def test_epochs_trials_and_embedding_passes_log_their_progress(spark, tmp_path):
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings

    home = tmp_path / "home"
    ingest_fashion_mnist(spark, settings=Settings(home=home), limit=200)

    train = _lookalike(
        home, "train", "--horovod", "2", "--eval-limit", "50",
        *_sets("epochs=2", "steps_per_epoch=2"),
    )  # fmt: skip
    epochs = _lines(train.stderr, r"epoch \(rank 0 of 2\) \d/2: loss ")
    assert len(epochs) == 2, train.stderr[-3000:]
    assert re.search(
        r"epoch \(rank 0 of 2\) 1/2: loss \S+; \d+ s elapsed, about \d+ s left$", epochs[0]
    )
    assert epochs[1].endswith(" s elapsed, done")

    # Spark's Python workers import the library's pyfunc classes too: no warning from them
    embed = _lookalike(home, "embed", "--encoder", "challenger")
    passes = _lines(embed.stderr, r"embedding pass with lookalike-encoder/\d+ on catalogue v\d+: ")
    assert len(passes) == 1 and "400 embedded" in passes[0], embed.stderr[-3000:]

    tune = _lookalike(
        home, "tune", "--trials", "2", "--parallelism", "2",
        *_sets("epochs=1", "steps_per_epoch=2"),
    )  # fmt: skip
    trials = _lines(tune.stderr, r"lookalike\.training\.progress trial \d/2: ")
    assert len(trials) == 2, tune.stderr[-3000:]
    assert re.search(r"trial 1/2: val_map_at_r \S+, best \S+; trial took \d+ s; ", trials[0])
    assert trials[1].endswith(" s elapsed, done")
