# onsale — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2
# Every install is pinned by the lock (pip-tools' pip-compile of pyproject.toml, all extras):
# `make lock` regenerates it after a dependency change in pyproject.toml.
LOCK   := requirements/constraints.txt
EXTRAS := dev,load,embedded

.PHONY: run test lint format bench bench-engine loadtest test-mongo audit clean lock compose-env

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools' "Editable installation" notice says nothing to act on: the install's
	@# output is kept in .venv/install.log and shown only when it fails.
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[$(EXTRAS)]' >$(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

## Regenerate the lock from pyproject.toml (pip-tools; every extra, so one file pins all).
lock:
	@test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/pip-compile || $(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --all-extras --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-find-links --no-emit-trusted-host --output-file $(LOCK) pyproject.toml

## docker compose's .env with a JWT_SECRET, written once (kept: tokens survive a redeploy).
compose-env:
	@$(PYTHON) scripts/compose_env.py

## Start everything on embedded defaults (redis-server child process, embedded store).
run: $(STAMP)
	$(BIN)/onsale serve --seed

## The whole test suite against real redis-server processes (lint first).
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider -q tests; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

## The store contract suite against a real MongoDB replica set (MONGODB_URI required).
test-mongo: $(STAMP)
	@test -n "$$MONGODB_URI" || { echo "MONGODB_URI is not set"; exit 2; }
	$(BIN)/python -m pytest -p no:cacheprovider -q tests/contract; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "no contract tests ran: failing"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: the whole suite, one table (BENCH_ARGS=--full for BENCHMARKING.md-length runs).
bench: $(STAMP)
	@command -v redis-benchmark >/dev/null && command -v wrk >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq redis-tools wrk)
	$(BIN)/python -m loadtest.bench_all $(BENCH_ARGS)

## locust on-sale mix against a server it starts, then audit (LOCUST_USERS, LOCUST_DURATION, LOCUST_TAGS).
loadtest: $(STAMP)
	@$(BIN)/python -c "import locust" 2>/dev/null || $(BIN)/pip install --quiet -c $(LOCK) -e '.[load]'
	$(BIN)/python -m loadtest.run_loadtest

bench-engine: $(STAMP)
	@command -v redis-benchmark >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-tools)
	$(BIN)/python -m loadtest.bench_engine

audit: $(STAMP)
	$(BIN)/onsale audit

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
