"""``bench/`` is a package run as ``python -m bench.<name>``: every module imports as part of
it, every benchmark has a ``main``, and none edits ``sys.path`` or imports from ``tests``."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODULES = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")
BENCHMARKS = [
    "byo",
    "conv_features",
    "data_parallel",
    "get_movielens",
    "index",
    "ingest",
    "pipeline",
    "quality",
    "serving",
    "shopper",
    "unseen_layers",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_as_part_of_the_package(name: str) -> None:
    importlib.import_module(f"bench.{name}")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_as_a_module(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.main)
    assert 'if __name__ == "__main__":' in (BENCH / f"{name}.py").read_text()


@pytest.mark.parametrize("name", MODULES)
def test_no_path_edits_and_no_test_imports(name: str) -> None:
    text = (BENCH / f"{name}.py").read_text()
    assert "sys.path" not in text
    assert not re.search(r"^\s*(from|import) tests\b", text, re.MULTILINE)
    assert not re.search(r"python bench/\w+\.py", text)  # the old spelling, in usage lines
