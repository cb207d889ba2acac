"""The help the person typing ``lookalike`` reads: what the program and each command group
does, an example per group, the exit statuses. ``apply`` puts it on the parsers the command
modules built; a top-level command without an entry in ``GROUPS`` fails the unit tests.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from lookalike.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE

DESCRIPTION = """\
Visually similar products and shopper recommendations from a catalogue of product photos
that keeps itself fresh: ingest products, train an image encoder, index the catalogue,
publish it to the recommendation service, and train a model of what shoppers buy.

Each command does one step. Its result goes to stdout (JSON for most commands, so a script
can read it); progress goes to stderr. Where the state lives and every other setting comes
from LOOKALIKE_* environment variables, LOOKALIKE_HOME first (docs/settings.md)."""

EPILOG = f"""\
a first run, in order:
  lookalike ingest fashion-mnist --limit 2000     # products into the catalogue
  lookalike train --set epochs=2                   # an encoder, registered as challenger
  lookalike promote                                # gate it; index the catalogue; publish
  lookalike serve                                  # the service on http://127.0.0.1:8000

exit status:
  {EXIT_OK}  done
  {EXIT_FAILED}  the operation failed; the last line on stderr says why ("lookalike: error: ...")
  {EXIT_USAGE}  the command line is wrong; stderr shows the usage and the argument at fault

Help on one command: lookalike COMMAND --help (e.g. lookalike index --help).
--verbose (before or after the command) also shows debug lines, and the warnings and log
lines of the libraries underneath (TensorFlow, MLflow...), which are hidden otherwise."""

#: Per top-level command: (what it does, for the person typing it; examples).
GROUPS: dict[str, tuple[str, list[str]]] = {
    "ingest": (
        "Add, update and delete products in the catalogue (the Delta table `catalog`) from a "
        "source, in one commit, on Spark. A folder's sub-folders are its categories; photos "
        "that cannot be used are rejected with their reason (lookalike catalog rejects).",
        [
            "lookalike ingest fashion-mnist --limit 2000",
            "lookalike ingest folder ./photos --metadata photos.csv --delete-missing",
            "lookalike ingest folder s3://bucket/feed --id-prefix feed2- --json",
        ],
    ),
    "catalog": (
        "Look at the catalogue: its version and counts, what changed since a version, and "
        "the inputs an ingest rejected.",
        [
            "lookalike catalog stats",
            "lookalike catalog changes --since 3",
            "lookalike catalog rejects --limit 10",
        ],
    ),
    "train": (
        "Train an image encoder on the catalogue, evaluate it against the raw-pixel "
        "baseline and register it in MLflow as the `challenger` (lookalike promote decides "
        "whether it serves). One progress line per epoch on stderr.",
        [
            "lookalike train --set epochs=3 --set embedding_size=128",
            "lookalike train --config best.json --horovod 2 --summary-file train.json",
        ],
    ),
    "tune": (
        "Search training settings with Hyperopt on Spark, scored on a validation slice of "
        "the training split; prints the best settings (for lookalike train --config). One "
        "progress line per trial on stderr.",
        ["lookalike tune --trials 8 --parallelism 2 --set epochs=2"],
    ),
    "evaluate": (
        "Evaluate a registered encoder on the catalogue's test split (precision@1, mAP@R).",
        ["lookalike evaluate --model champion --eval-limit 1000"],
    ),
    "embed": (
        "Embed the catalogue with one encoder version on Spark (the table `embeddings`); "
        "items whose photo did not change since are skipped.",
        ["lookalike embed --encoder champion"],
    ),
    "index": (
        "ScaNN index versions of the catalogue: build one in full, update the served one "
        "from the catalogue's changes, list them, check their files. A version is "
        "published (moves the service) only after its recall@10 passed.",
        [
            "lookalike index update",
            "lookalike index build --encoder 3 --no-publish",
            "lookalike index verify v000004",
        ],
    ),
    "bundle": (
        "The bundle the service serves (encoder + index version, the MLflow model "
        "`lookalike-recommender`): show it, or publish an index version as it.",
        ["lookalike bundle show", "lookalike bundle publish --index v000004"],
    ),
    "promote": (
        "Gate the challenger encoder against the champion on the same data; a winner gets a "
        "full index and a bundle, then the `champion` and `production` aliases.",
        ["lookalike promote", "lookalike promote --challenger 7 --margin 0.01"],
    ),
    "rollback": (
        "Point the service back at the previous bundle version.",
        ["lookalike rollback"],
    ),
    "serve": (
        "Run the recommendation service (REST routes, metrics, a web page); it follows the "
        "production aliases and reloads without downtime.",
        ["lookalike serve --port 8080"],
    ),
    "shopper": (
        "Shopper recommendations: land and ingest interactions (or simulate them), tune and "
        "train the matrix-factorisation model, gate it, and ask it for one shopper.",
        [
            "lookalike shopper simulate --users 1000 --events 50000 --ingest",
            "lookalike shopper train --tune auto",
            "lookalike shopper recommend u0042 --k 5",
        ],
    ),
}


#: Where descriptions are wrapped (they are printed as they are, like the examples).
WIDTH = 88


def epilog(examples: list[str]) -> str:
    """An ``examples:`` block, one command a line."""
    return "examples:\n" + "\n".join(f"  {e}" for e in examples)


def _subparsers(parser: argparse.ArgumentParser) -> list[Any]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _describe_nested(parser: argparse.ArgumentParser) -> None:
    """A sub-command without a description gets the one line its group lists it with."""
    for action in _subparsers(parser):
        helps = {c.dest: c.help for c in action._choices_actions}
        for name, child in action.choices.items():
            if child.description is None and helps.get(name):
                child.description = helps[name][0].upper() + helps[name][1:]
            _describe_nested(child)


def apply(parser: argparse.ArgumentParser) -> None:
    """Descriptions and examples on the top-level commands of ``parser`` (KeyError: a
    command without help text), one-line descriptions on the commands below them."""
    for action in _subparsers(parser):
        for name, child in action.choices.items():
            text, examples = GROUPS[name]
            child.description = textwrap.fill(text, WIDTH)
            child.epilog = epilog(examples)
            child.formatter_class = argparse.RawDescriptionHelpFormatter
            _describe_nested(child)
