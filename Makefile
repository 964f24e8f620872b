# KundenCenter: `make run` (whole system with demo data) and `make test` (whole suite).
# `make test-unit`: the tests that need no broker and no database (seconds);
# `make test SERVICE=billing`: one service's tests; `make test-e2e`: tests/ (the whole system).
# `make test` measures branch coverage and prints it per package at the end (pyproject.toml
# [tool.coverage.*], deploy/coverage_summary.py); COVERAGE_PROCESSES=1 also measures the
# processes the end-to-end tests start; PYTEST_ARGS=--no-cov leaves coverage out.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock libs/*/pyproject.toml services/*/pyproject.toml gateway/pyproject.toml web/pyproject.toml | sha1sum | cut -c1-12)
PACKAGES := libs/kc_common $(wildcard services/*) gateway web

.PHONY: run test test-unit test-e2e bench bench-soak install lock clean

run: install
	@bash deploy/ensure-services.sh
	@bash deploy/run.sh

test: install
	@bash deploy/ensure-services.sh --postgres --management
	@bash deploy/ensure-tools.sh
	@$(BIN)/lint-imports --config .importlinter
	@$(BIN)/ruff check libs gateway services tests web bench deploy
	@$(BIN)/mypy
	@rm -f .coverage .coverage.*; status=0; \
	  $(if $(COVERAGE_PROCESSES),COVERAGE_PROCESS_START=$(CURDIR)/pyproject.toml COVERAGE_FILE=$(CURDIR)/.coverage) \
	  $(BIN)/pytest --cov --cov-report= $(if $(SERVICE),$(or $(firstword $(wildcard services/$(SERVICE) libs/$(SERVICE) $(SERVICE))),$(error no tests of SERVICE=$(SERVICE)))) $(PYTEST_ARGS) || status=$$?; \
	  $(BIN)/python deploy/coverage_summary.py; exit $$status

# No broker, no database, no slow process tests: the `unit` marker is set from the fixtures a test requests
# (kc_common.testing), so it cannot go stale.
test-unit: install
	@$(BIN)/pytest -m "unit and not slow" -q $(PYTEST_ARGS)

test-e2e: install
	@bash deploy/ensure-services.sh --postgres --management
	@bash deploy/ensure-tools.sh
	@$(BIN)/pytest tests $(PYTEST_ARGS)

# The soak workload on SQLite and PostgreSQL, with figures (not part of `make test`;
# a few minutes). Options: BENCH_ARGS="--seconds 30 --customers 8 --database sqlite".
bench-soak: install
	@bash deploy/ensure-services.sh --postgres --management
	@$(BIN)/python tests/bench/soak.py $(BENCH_ARGS)

# Speed figures (issue 17): product vs anchor, printed as a table; not part of `make test`.
# BENCH_ARGS=--write appends the table to docs/performance.md.
bench: install
	@bash deploy/ensure-services.sh --postgres --management
	@bash deploy/ensure-tools.sh --bench
	@$(BIN)/python bench/bench.py $(BENCH_ARGS)

install: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps $(addprefix -e ,$(PACKAGES))
	@rm -f $(VENV)/.installed-* && touch $@

# Re-pin the whole dependency tree from requirements.in.
lock:
	rm -rf /tmp/kc-lock && $(PYTHON) -m venv /tmp/kc-lock
	/tmp/kc-lock/bin/pip install -q -r requirements.in
	/tmp/kc-lock/bin/pip freeze --all | grep -v '^pip==\|^#\|^-e ' > requirements.lock

clean:
	rm -rf $(VENV) var
