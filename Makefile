# applyq: `make demo` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help demo test chaos bench bench-memory clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

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

clean:  ## remove the virtualenv and local state
	rm -rf $(VENV) .applyq applyq.db applyq.db-wal applyq.db-shm
