# Two commands: `make run` starts the chat, `make test` passes the suite. Nothing else to install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test test-fast lint bench loadtest install install-dev clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Holdfast needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.stamp-run

install: $(VENV)/.stamp-run
install-dev: $(VENV)/.stamp-dev

run: $(VENV)/.stamp-run
	$(BIN)/holdfast $(ARGS)

test: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop: unit and component tests (real Redis and LanceDB included), without the ones
# marked slow (the console script, process kills, big tables), ui (Textual Pilot and snapshots) or
# e2e (end to end against the demo LLM server); under a minute on 2 cores. `make test` runs them all.
test-fast: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -m "not slow and not ui and not e2e" $(PYTEST_ARGS)

# Style, types and the layer rule (import-linter contracts in pyproject.toml).
lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check runtime app plugins tests
	$(BIN)/ruff format --check runtime app plugins tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# elia (the launch-time peer in bench_app) pins an older Textual, so it gets its own venv.
.venv-elia/bin/elia:
	$(PYTHON) -m venv .venv-elia
	.venv-elia/bin/python -m pip --disable-pip-version-check -q install elia-chat

bench: $(VENV)/.stamp-dev .venv-elia/bin/elia
	ELIA=$(CURDIR)/.venv-elia/bin/elia $(BIN)/python -m pytest tests/bench -o addopts="-q -p no:cacheprovider" -o python_files="bench_*.py" -s $(PYTEST_ARGS)

# Load and fault test (issue 19): 100 users x 60 s against 3 `holdfast serve` replicas on a 3+3
# Redis Cluster, one replica and one primary killed by pid; prints the table, fails on any lost
# or duplicated message. Not part of `make test` (its 15-second version is). ARGS: --help.
loadtest: $(VENV)/.stamp-dev
	$(BIN)/python -m tests.load.loadtest $(ARGS)

clean:
	rm -rf $(VENV) .venv-elia .pytest_cache build *.egg-info
