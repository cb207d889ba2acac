"""The ``lookalike`` command line. Thin: parse, validate arguments, call library functions.

Exit statuses (``output.EXIT_*``): 0 done; 1 a failed operation, reported as one line
``lookalike: error: ...`` on stderr (``CommandError``, and the library's errors that are the
user's to fix, ``_known_errors``); 2 bad arguments, argparse's usage and a message naming the
argument (``UsageError``, a ``CommandError``). Anything else is a bug: its traceback shows.

One module per command group, each with an ``add_parser(subparsers)``; ``helptext`` holds
what the user reads in ``--help`` (a description and examples per group); ``output`` what
the modules share (``UsageError``, ``out``, ``emit``); ``logs`` sends the library's progress
lines to stderr and keeps third-party warnings and log noise off it unless ``--verbose``;
``version`` is ``--version``. Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lookalike.cli import catalog, helptext, index, model, serve, shopper
from lookalike.cli.logs import configure_logging, quiet_third_parties
from lookalike.cli.output import CommandError, UsageError, command_output
from lookalike.cli.version import VersionAction

__all__ = ["CommandError", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``lookalike`` parser: one sub-command group per module of this package, with the
    help text of ``helptext``."""
    p = argparse.ArgumentParser(
        prog="lookalike",
        description=helptext.DESCRIPTION,
        epilog=helptext.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=VersionAction)
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for group in (catalog, model, index, serve, shopper):
        group.add_parser(sub)
    helptext.apply(p)
    _verbose_after_the_command(p)
    return p


VERBOSE_HELP = "also debug lines, and the warnings and logs of third-party libraries"


def _verbose_after_the_command(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` after a command too (``spark_jobs/*.py`` put the command first); absent
    there, it leaves the top-level value alone."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.add_argument(
                    "-v",
                    "--verbose",
                    action="store_true",
                    default=argparse.SUPPRESS,
                    help=VERBOSE_HELP,
                )
                _verbose_after_the_command(child)


def _known_errors() -> tuple[type[BaseException], ...]:
    """Library failures that are the user's to fix, reported as one line (exit 1), not a
    traceback: the message says what happened and what to do."""
    from lookalike.catalog.idx import IdxFormatError
    from lookalike.catalog.sources import SourceError
    from lookalike.catalog.table import CatalogError
    from lookalike.index.scann_index import IndexVersionError, RecallTooLow
    from lookalike.locks import LeaseHeld
    from lookalike.registry.cache import CacheError
    from lookalike.registry.gate import PromotionError
    from lookalike.registry.versions import VersionNotFound
    from lookalike.shopper.data import EmptyInteractions
    from lookalike.shopper.interactions import InteractionsError
    from lookalike.similarity.bundle import BundleCheckError
    from lookalike.similarity.data import EmptyDataError
    from lookalike.similarity.index import IndexBuildError
    from lookalike.similarity.registry import BundleError

    return (
        InteractionsError,
        EmptyInteractions,
        CatalogError,  # IngestFailed, WriteConflict too
        SourceError,
        IdxFormatError,
        FileNotFoundError,
        EmptyDataError,
        IndexBuildError,  # EncoderMismatch too
        IndexVersionError,  # IndexVersionNotFound too
        RecallTooLow,
        VersionNotFound,  # EncoderNotFound too
        CacheError,
        BundleError,
        BundleCheckError,
        PromotionError,
        LeaseHeld,
    )


def _error_line(e: BaseException) -> str:
    """``lookalike: error: <message>`` on one line."""
    return "lookalike: error: " + " ".join(str(e).splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 a failed operation; bad arguments
    exit 2 through argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)  # progress on stderr: stdout carries the result
    with quiet_third_parties(args.verbose):  # the error's imports too: they warn as well
        try:
            with command_output():
                return args.func(args)
        except UsageError as e:
            parser.error(str(e))
        except CommandError as e:
            print(_error_line(e), file=sys.stderr)
            return e.exit_code
        except Exception as e:
            if isinstance(e, _known_errors()):
                print(_error_line(e), file=sys.stderr)
                return 1
            raise
    return 0
