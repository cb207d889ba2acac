# The two commands a newcomer needs: `make demo` and `make test`. Both set up first.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
# spark-submit finds SPARK_HOME through `python3`: the venv must come first on PATH.
export PATH := $(VENV)/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: setup demo stop serve test test-fast lint format bench-ingest bench-quality bench-index bench-serving bench-shopper bench-pipeline bench-horovod bench-byo clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

stop:
	@bash scripts/stop.sh

serve: setup
	lookalike serve

# Two pytest-xdist workers (a test file stays on one worker: its module fixtures are built
# once), then the `alone` tests (wall-clock limits) with nothing beside them.
# --durations: the 30 slowest steps in every CI log, to see where the time goes
test: setup lint
	pytest -n 2 --dist loadfile -m "not alone" --durations=30 $(PYTEST_ARGS)
	pytest -m alone $(PYTEST_ARGS)

test-fast: setup
	pytest -m "not slow" $(PYTEST_ARGS)

# ruff (style, complexity, library docstrings), the layer contracts (pyproject.toml,
# docs/architecture.md), no import loop between any two modules, no function over 60 lines in
# lookalike/ and serving/
lint: setup
	ruff check .
	ruff format --check .
	lint-imports
	python scripts/check_import_cycles.py
	python scripts/check_function_length.py

format: setup
	ruff check --fix .
	ruff format .

bench-ingest: setup
	python -m bench.ingest

bench-quality: setup
	python -m bench.quality

bench-index: setup
	python -m bench.index

bench-shopper: setup
	python -m bench.get_movielens
	python -m bench.shopper

bench-pipeline: setup
	python -m bench.pipeline

bench-horovod: setup
	python -m bench.data_parallel

# the photos: PNG icons that Debian's mate-icon-theme ships (one size, context folders = categories)
bench-byo: setup
	@[ -d /usr/share/icons/mate/48x48 ] || { s=""; [ "$$(id -u)" = 0 ] || s=sudo; $$s apt-get install -y -qq --no-install-recommends mate-icon-theme >/dev/null; }
	python -m bench.byo

bench-serving: setup
	@command -v wrk >/dev/null || { s=""; [ "$$(id -u)" = 0 ] || s=sudo; $$s apt-get install -y -qq wrk >/dev/null; }
	python -m bench.serving

clean:
	rm -rf .lookalike
