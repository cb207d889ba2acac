"""Fail on any import loop between modules of lookalike/ or serving/ (inside a package too).

The layer contracts (lint-imports) only order packages; two modules of one package that
import each other (even inside a function) pass them. Every import counts, as there.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("lookalike", "serving")


def loops(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Each import ``a -> b`` that ``b`` leads back from (a chain ``b -> ... -> a``), as the
    loop's modules, once per loop."""
    found: dict[frozenset[str], list[str]] = {}
    for a in sorted(modules):
        for b in sorted(graph.find_modules_directly_imported_by(a) & modules):
            chain = graph.find_shortest_chain(importer=b, imported=a)
            if chain:
                found.setdefault(frozenset(chain), [a, *chain])
    return list(found.values())


def main() -> int:
    """Print each loop and return 1 when there is any."""
    graph = grimp.build_graph(*PACKAGES)
    modules = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    found = loops(graph, modules)
    for loop in found:
        print("import loop: " + " -> ".join(loop))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
