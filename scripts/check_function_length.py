#!/usr/bin/env python3
"""No function in lookalike/ or serving/ longer than MAX_LINES lines (run by `make lint`).

A function's length runs from its ``def`` line to its last line, decorators and docstring
not counted (a docstring never pushes a function over). Methods and nested functions count
on their own, and also as part of the function around them. A long function is a list of
steps: give them names. Exit status 1 lists every offender.

    python scripts/check_function_length.py [--max N] [paths...]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 60
ROOTS = ("lookalike", "serving")

#: Known offenders the checker accepts: only functions in files another engineer owns and is
#: changing (refactor them when that work lands, then delete the entry). "path::qualname".
ALLOWED: dict[str, str] = {}

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _docstring_lines(node: Function) -> int:
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return (first.end_lineno or first.lineno) - first.lineno + 1
    return 0


def length(node: Function) -> int:
    """Lines from ``def`` to the function's last line, without its docstring."""
    return (node.end_lineno or node.lineno) - node.lineno + 1 - _docstring_lines(node)


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, Function]]:
    """Every function and method in ``tree`` with its qualified name (``Class.method``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def check(paths: list[Path], max_lines: int) -> tuple[list[str], list[str]]:
    """(offences, allow-list entries not seen over the limit) over the files under ``paths``."""
    offences, seen_allowed = [], set()
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            rel = path.resolve().relative_to(REPO).as_posix()
            for name, node in functions(ast.parse(path.read_text(), str(path))):
                n = length(node)
                if n <= max_lines:
                    continue
                key = f"{rel}::{name}"
                if key in ALLOWED:
                    seen_allowed.add(key)
                    continue
                offences.append(f"{rel}:{node.lineno}: {name} is {n} lines (max {max_lines})")
    return offences, sorted(set(ALLOWED) - seen_allowed)


def main() -> int:
    """Check, print the offenders, exit 1 when there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=MAX_LINES, help="longest allowed function")
    parser.add_argument("paths", nargs="*", type=Path, help=f"default: {' '.join(ROOTS)}")
    args = parser.parse_args()
    paths = args.paths or [REPO / r for r in ROOTS]
    offences, stale = check(paths, args.max)
    for entry in stale if not args.paths else []:
        print(f"note: {entry} is no longer over the limit: remove it from ALLOWED", file=sys.stderr)
    for line in offences:
        print(line)
    if offences:
        print(f"{len(offences)} function(s) over {args.max} lines: split them into named steps")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
