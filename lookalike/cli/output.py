"""What every command shares: its result on stdout, its usage errors, the output options."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

#: Exit statuses of every command (``lookalike --help`` lists them).
EXIT_OK = 0
#: The operation failed: one line ``lookalike: error: ...`` on stderr says why.
EXIT_FAILED = 1
#: The command line is wrong: the usage and the argument at fault on stderr (argparse's).
EXIT_USAGE = 2


class CommandError(Exception):
    """A user error: the command could not do what was asked, and its message (one line,
    ``lookalike: error: ...``) says why and what to do. The base of the command line's own
    errors; ``exit_code`` is the process's status. Library errors that are the user's to
    fix (an unknown encoder, no index yet, a lease held...) are reported the same way."""

    exit_code = EXIT_FAILED


class UsageError(CommandError):
    """A command-line argument is wrong; the message names it (exit 2, after the usage)."""

    exit_code = EXIT_USAGE


#: Commands whose result is always JSON accept --json too, so scripts can pass it everywhere.
JSON_HELP = "the result is JSON on stdout (always; logs go to stderr)"

#: Where results go: the real stdout. While a command runs, ``sys.stdout`` is stderr, so
#: library chatter (TF Similarity prints progress with ``print``) never mixes into a JSON
#: result that a script or DAG parses.
_RESULTS: TextIO | None = None  # set by command_output() while a command runs


@contextlib.contextmanager
def command_output() -> Iterator[None]:
    """While a command runs: ``out`` writes to the stdout of the moment, ``print`` to stderr."""
    global _RESULTS
    _RESULTS = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _RESULTS = None


def out(text: str) -> None:
    """A command's result: the only thing written to stdout."""
    print(text, file=_RESULTS or sys.stdout, flush=True)


def write_summary(result: dict[str, Any], summary_file: str | None) -> None:
    """``--summary-file``: the JSON result in a file, a path or a store URI (spark-submit
    mixes logs into stdout)."""
    if summary_file:
        from lookalike.workflows.summaries import write_summary as write

        write(result, str(summary_file))


def emit(result: dict[str, Any], summary_file: str | None) -> None:
    """A JSON result: on stdout, and in ``summary_file`` when one is given."""
    out(json.dumps(result, indent=2, default=str))
    write_summary(result, summary_file)


def output_options(json_help: str = JSON_HELP) -> argparse.ArgumentParser:
    """A parent parser: ``--summary-file FILE`` and ``--json``."""
    opts = argparse.ArgumentParser(add_help=False)
    opts.add_argument("--summary-file", metavar="FILE", help="a local path or a store URI")
    opts.add_argument("--json", action="store_true", help=json_help)
    return opts
