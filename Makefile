# applyq: `make demo` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every dependency pinned with its hashes (`make lock` regenerates both from pyproject.toml):
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
# uv (pinned in the dev lock) installs the lock: seconds where pip takes minutes. --compile-bytecode: with
# PYTHONDONTWRITEBYTECODE set (as on CI machines) every applyq process would otherwise compile its imports anew
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(DEV_LOCK))
UV_COMPILE = $(BIN)/python -m uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: help demo test lock audit chaos bench bench-memory bench-scale clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The lock is complete, so uv installs it without resolving; the project itself comes last, with --no-deps and
# the locked setuptools; `pip check` then fails on a lock that no longer satisfies pyproject.toml (run `make lock`).
$(STAMP): $(BIN)/python $(DEV_LOCK) pyproject.toml
	@echo "Installing applyq's pinned dependencies ($(DEV_LOCK)) into $(VENV) with uv: under a minute the first time (downloads), seconds after."
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps --require-hashes -r $(DEV_LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

lock: $(BIN)/python  ## pin pyproject.toml's dependencies in the lock files (LOCK_ARGS=--upgrade: newest versions)
	$(BIN)/python -m pip install --quiet 'uv>=0.4'
	$(UV_COMPILE) $(LOCK_ARGS) -o $(LOCK)
	$(UV_COMPILE) $(LOCK_ARGS) --extra dev --constraint $(LOCK) -o $(DEV_LOCK)

audit: $(STAMP)  ## known vulnerabilities of every pinned dependency (pip-audit; needs PyPI's advisory data online)
	$(BIN)/pip-audit --strict --disable-pip --require-hashes -r $(DEV_LOCK) $(AUDIT_ARGS)

demo: $(STAMP)  ## run 92 scripted applications through a real worker and the sandbox (SQLite + embedded Redis)
	$(BIN)/applyq demo

test: $(STAMP)  ## lint, type-check, import layers, and the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m tools.docs_tables --check
	$(BIN)/python -m pytest; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$status

chaos: $(STAMP)  ## 2,000 submissions while workers are killed, Redis flushed, PostgreSQL restarted
	$(BIN)/python -m benchmarks.chaos $(CHAOS_ARGS)

bench: $(STAMP)  ## throughput, enqueue latency, memory, traffic: each beside a baseline (PostgreSQL + Redis)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-memory: $(STAMP)  ## worker and Redis memory with 100,000 submissions scheduled an hour ahead
	$(BIN)/python -m benchmarks.memory $(BENCH_ARGS)

bench-scale: $(STAMP)  ## scrape, stats, list, enqueue... with 1,000,000 ended submissions beside an empty database
	$(BIN)/python -m benchmarks.scale $(BENCH_ARGS)

clean:  ## remove the virtualenv and local state
	rm -rf $(VENV) .applyq applyq.db applyq.db-wal applyq.db-shm
