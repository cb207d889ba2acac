"""A pyfunc registered before the package move still unpickles: its class is found at the
old module path."""

import pickle
import sys

import pytest

from lookalike.registry.moved import MOVED, alias_moved_modules


@pytest.mark.parametrize(
    ("old", "cls"),
    [
        ("lookalike.model.tracking", "EncoderModel"),
        ("lookalike.bundle.registry", "RecommenderModel"),
    ],
)
def test_a_class_pickled_under_its_old_module_loads(old, cls, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    pickled = f"c{old}\n{cls}\n.".encode()  # what an old version's python_model.pkl names
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(pickled)
    alias_moved_modules()
    loaded = pickle.loads(pickled)
    assert loaded.__name__ == cls
    assert loaded.__module__ == MOVED[old]
