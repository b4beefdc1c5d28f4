# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions (with hashes) of everything `make demo`, `make test` and CI install, compiled
# from pyproject.toml's ranges by `make lock`.
LOCK := requirements.lock
UV_VERSION := 0.13.9

CHROMIUM := /usr/bin/chromium

.PHONY: demo demo-google test test-fast bench lint typecheck lock format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# A dependency added to pyproject.toml, or a range changed, without `make lock` would leave
# what is installed short of what calsync asks for: pip's dry run names it, and we stop.
$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	@dry=$$($(BIN)/pip install --dry-run -e '.[test]' 2>&1) \
		|| { echo "$$dry" | grep -v 'is ignored' | tail -3; \
			echo "pyproject.toml asks for what $(LOCK) lacks: run 'make lock'"; exit 1; }; \
	unlocked=$$(echo "$$dry" | sed -n 's/^Would install //p' | tr ' ' '\n' | grep -v '^calsync-'); \
	if [ -n "$$unlocked" ]; then \
		echo "pyproject.toml asks for" $$unlocked "beyond $(LOCK): run 'make lock'"; exit 1; \
	fi
	touch $(STAMP)

# After changing dependencies in pyproject.toml: keeps every pin that still fits, resolves the
# rest from PyPI. `make lock UPGRADE=1` moves every package to the newest version allowed.
lock: $(BIN)/python
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command 'make lock' --quiet \
		-o $(LOCK) $(if $(UPGRADE),--upgrade)

demo: $(STAMP)
	$(BIN)/calsync demo

# The same demo with the owner's calendar in a local fake of Google Calendar.
demo-google: $(STAMP)
	$(BIN)/calsync demo --google-fake

# The browser tests drive Debian's Chromium (never a downloaded browser build).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
	else \
		echo "Browser tests need Debian's chromium: sudo apt-get install chromium"; \
	fi

# The suite runs on every core (pytest-xdist), at most 4 workers: each worker starts its own
# Radicale, Xandikos and PostgreSQL template. Tests that share a module-scoped browser stay on
# one worker (loadgroup, see tests/conftest.py). PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
PARALLEL := -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadgroup

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider $(PARALLEL)

test-fast: $(STAMP)
	$(BIN)/pytest -q -m 'not slow' $(PARALLEL)

# Every benchmark in bench/__main__.py's BENCHMARKS, ending with the scale benchmark (1,000
# calendars on 1, 2 and 4 workers; needs the PostgreSQL of CALSYNC_TEST_POSTGRES_URL).
# `make bench BENCH="scale" BENCH_ARGS="--calendars 5000"` runs some with options.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH) $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
