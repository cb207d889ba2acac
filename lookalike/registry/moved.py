"""Old module paths of pickled pyfunc classes, answered by the modules that hold them now.

A registered pyfunc pickles its class by module path. Versions registered before the two
products became packages (0.1: ``lookalike.model``, ``lookalike.bundle``) name modules that no
longer exist; without this, an upgrade would leave the served bundle and the champion encoder
unloadable until the next training. The modules are named as strings on purpose: the
registry sits below the products and never imports them, it only lets old pickles find them.
"""

from __future__ import annotations

import importlib
import sys

#: old module path -> the module that holds its pyfunc class now
MOVED = {
    "lookalike.model.tracking": "lookalike.similarity.tracking",  # EncoderModel
    "lookalike.bundle.registry": "lookalike.similarity.registry",  # RecommenderModel
}


def alias_moved_modules() -> None:
    """Make each old path in ``MOVED`` import as its new module (idempotent, cheap)."""
    for old, new in MOVED.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)
