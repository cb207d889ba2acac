"""The ``lookalike`` command line. Thin: parse, validate arguments, call library functions.

Bad arguments exit with status 2 and a message naming the argument; a failed job exits 1.
One module per command group, each with an ``add_parser(subparsers)``; ``output`` holds what
they share (``UsageError``, ``out``, ``emit``); ``logs`` sends the library's progress lines to
stderr. Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lookalike.cli import catalog, index, model, serve, shopper
from lookalike.cli.logs import configure_logging
from lookalike.cli.output import UsageError, command_output

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``lookalike`` parser: one sub-command group per module of this package."""
    p = argparse.ArgumentParser(prog="lookalike", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for group in (catalog, model, index, serve, shopper):
        group.add_parser(sub)
    return p


def _known_errors() -> tuple[type[BaseException], ...]:
    """Failures reported as one line (exit 1), not a traceback: the message says it all."""
    from lookalike.bundle.recommender import BundleCheckError
    from lookalike.bundle.registry import BundleError
    from lookalike.catalog.table import CatalogError
    from lookalike.index.builder import IndexBuildError
    from lookalike.index.scann_index import IndexVersionError, RecallTooLow
    from lookalike.registry.gate import PromotionError
    from lookalike.registry.versions import VersionNotFound
    from lookalike.shopper.data import EmptyInteractions
    from lookalike.shopper.interactions import InteractionsError

    return (
        InteractionsError,
        EmptyInteractions,
        CatalogError,
        FileNotFoundError,
        IndexBuildError,
        IndexVersionError,
        RecallTooLow,
        VersionNotFound,  # EncoderNotFound too
        BundleError,
        BundleCheckError,
        PromotionError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 a failed job, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()  # progress on stderr: stdout carries the result alone
    try:
        with command_output():
            return args.func(args)
    except UsageError as e:
        parser.error(str(e))
    except Exception as e:
        if isinstance(e, _known_errors()):
            print(f"lookalike: error: {e}", file=sys.stderr)
            return 1
        raise
    return 0
