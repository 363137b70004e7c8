# Taiqu: `make demo` runs the embedded demo, `make test` runs everything CI runs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= headend,sim,dev

.PHONY: all venv services lint types test unit demo bench wheelhouse clean

all: test

$(STAMP): pyproject.toml
	@scripts/ensure-python.sh $(PY)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	@touch $@

venv: $(STAMP)

# System services the integration tests start privately (mosquitto, PostgreSQL, Chromium).
services:
	@scripts/install-services.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check protocols taiqu

types: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q -m "not integration"

# Tests run on every core (pytest-xdist), a test file per worker: each worker starts its own private
# PostgreSQL and brokers on free ports.  TEST_JOBS=0 runs them in this one process.  Tests that time
# a simulated bus in wall-clock milliseconds (marker ``realtime``) run alone afterwards.
TEST_JOBS ?= auto

test: venv services lint types
	$(BIN)/pytest -q -n $(TEST_JOBS) --dist loadfile -m "not realtime" --durations=15
	$(BIN)/pytest -q -m realtime --durations=5

# The demo runs mosquitto with the shipped config and ACL (installed here when run as root; without
# it the demo falls back to an embedded anonymous broker and says so).
demo: venv
	@scripts/install-services.sh mosquitto
	$(BIN)/taiqu demo

bench: venv services
	$(BIN)/python bench/run_all.py

wheelhouse: venv
	$(BIN)/pip wheel --quiet --wheel-dir wheelhouse '.'

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis wheelhouse
