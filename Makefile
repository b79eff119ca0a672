# Two entry points matter: `make run` (the example chat on the in-memory hub) and
# `make test` (ruff, mypy, the docs build, pytest). Each creates .venv and installs what it
# needs. `make docs` serves the documentation site locally.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DOCS_PORT ?= 8001

.PHONY: run test lint typecheck pytest jstest docs docs-build bench bench-rooms loadgen soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# `bocadillo run` serves with the app's limits (docs/deployment.md).
run: $(VENV)/.installed
	$(BIN)/bocadillo run example_chat.app:app --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# The official AsyncAPI 3.0.0 JSON Schema (the @asyncapi/specs npm package): the AsyncAPI
# tests validate the generated documents against it.
ASYNCAPI_SPECS ?= 6.11.1
ASYNCAPI_SCHEMA := $(VENV)/asyncapi-specs/package/schemas/3.0.0.json

$(ASYNCAPI_SCHEMA):
	mkdir -p $(VENV)/asyncapi-specs
	cd $(VENV)/asyncapi-specs && npm pack --silent @asyncapi/specs@$(ASYNCAPI_SPECS) >/dev/null \
		&& tar xzf asyncapi-specs-$(ASYNCAPI_SPECS).tgz package/schemas/3.0.0.json
	touch $@

pytest: $(VENV)/.installed-dev $(ASYNCAPI_SCHEMA)
	PYTHONASYNCIODEBUG=1 $(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage report

# The JavaScript client's tests (clients/js/test/), with Node's own test runner, against a
# real uvicorn that tests/clients/serve.py runs with this virtualenv's Python. Node 20 has
# a WebSocket class only behind a flag; later versions have it by default.
NODE ?= node
NODE_WS = $(shell $(NODE) -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null || echo --experimental-websocket)

jstest: $(VENV)/.installed-dev
	BOCADILLO_PYTHON=$(abspath $(BIN)/python) $(NODE) $(NODE_WS) --test clients/js/test/client.test.js

# The docs extra only (MkDocs, Material, mkdocstrings), not the dev toolchain.
$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

# Material's notice about its successor is not a warning of this site.
export NO_MKDOCS_2_WARNING := 1

docs: $(VENV)/.installed-docs
	$(BIN)/mkdocs serve --dev-addr $(HOST):$(DOCS_PORT)

# --strict: any warning, such as a link to a missing page or anchor, fails the build
# (not with --quiet, which hides the warnings from the strict check).
docs-build: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict --site-dir site

test: lint typecheck docs-build pytest jstest

# Reliability scenarios at full size (docs/reliability.md): 5,000 connections, a minute of
# churn, 100,000 fuzzed frames... about ten minutes. `make test` runs them at CI size.
# The figures land in artifacts/reliability/full/.
soak: $(VENV)/.installed-dev
	BOCADILLO_SOAK=1 $(BIN)/pytest tests/reliability -p no:cacheprovider $(PYTEST_ARGS)

# Benchmarks (bench/README.md): their own virtualenv, pinned peers, about 20 minutes.
# `make bench BENCH_ARGS=--quick` checks the harness in about 3.
BENCH_VENV ?= bench/.venv
BENCH_ARGS ?=

$(BENCH_VENV)/.installed: bench/requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt -e .
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

# bench/rooms.py's load generator in C (bench/loadgen/): benchmarks only, not `make test`.
# `python -m bench.rooms` runs this rule itself, and falls back to its picows generator
# when it fails (no gcc).
LOADGEN := bench/loadgen/rooms-load
LOADGEN_CC ?= gcc
LOADGEN_CFLAGS ?= -O2 -Wall -Wextra -std=gnu11

$(LOADGEN): bench/loadgen/rooms_load.c
	$(LOADGEN_CC) $(LOADGEN_CFLAGS) -o $@ $<

loadgen: $(LOADGEN)

# Per-room fan-out on 1, 2 and 4 workers (bench/README.md gives the published arguments).
ROOMS_ARGS ?=

bench-rooms: $(BENCH_VENV)/.installed $(LOADGEN)
	$(BENCH_VENV)/bin/python -m bench.rooms $(ROOMS_ARGS)

clean:
	rm -rf $(VENV) .coverage .mypy_cache .pytest_cache .ruff_cache site artifacts $(LOADGEN)
