# The README's two commands: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint format venv lock services bench clean

demo: venv                       ## set up, then run the pipeline on the embedded default
	$(BIN)/jobcarbon demo

test: venv services lint         ## set up (services included), then pass every CI suite
	JOBCARBON_REQUIRE_SERVICES=1 $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: venv services         ## long suites kept out of CI (see README)
	JOBCARBON_REQUIRE_SERVICES=1 $(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

venv:
	@scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"

lock: venv                       ## re-pin constraints.txt to what the venv has now
	@scripts/lock.sh "$(VENV)"

services:                        ## install the real services the tests start (idempotent)
	@scripts/install-services.sh

bench: venv                      ## every benchmark (figures: bench/README.md)
	$(BIN)/python -m bench.normalize
	$(BIN)/python -m bench.warehouse
	$(BIN)/python -m bench.enrich
	$(BIN)/python -m bench.predict
	$(BIN)/python -m bench.credit
	$(BIN)/python -m bench.reconcile
	$(BIN)/python -m bench.stream

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
