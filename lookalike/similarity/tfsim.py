"""TensorFlow Similarity without its plotting helpers.

``tensorflow_similarity/__init__`` imports ``visualization``, whose modules import umap
(numba, pynndescent), bokeh and matplotlib: about 5 s of every process that trains or embeds
(CLI commands, Spark Python workers, Horovod ranks, Hyperopt trials), for plots this project
never draws. A placeholder takes its place in ``sys.modules`` during the import and loads the
real subpackage the first time one of its names is used.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

_VIZ = "tensorflow_similarity.visualization"


class _Deferred(ModuleType):
    """Stands for ``tensorflow_similarity.visualization`` until a name of it is asked for.
    (``importlib.util.LazyLoader`` does not do: the import system reads ``__spec__`` of a
    module found in ``sys.modules``, which would load it at once.)"""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if sys.modules.get(_VIZ) is self:
            del sys.modules[_VIZ]
        real = importlib.import_module(_VIZ)
        return getattr(real, name)


def import_tfsim() -> ModuleType:
    """``tensorflow_similarity``, imported without loading its visualisation helpers."""
    if "tensorflow_similarity" not in sys.modules:
        sys.modules.setdefault(_VIZ, _Deferred(_VIZ))
    import tensorflow_similarity

    return tensorflow_similarity
