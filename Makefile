# Quick start: `make demo` (install + run the daily sync on embedded defaults),
# `make test` (install + run the test suite). `make dev` opens the Dagster UI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.shopify_sync/dagster_home
# pytest-xdist workers for `make test` (each test has its own databases, homes and ports).
PYTEST_WORKERS ?= 2

.PHONY: install dagster-yaml demo dev test lint typecheck bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,deploy]' 2>&1 | grep -v "is neither a file nor a directory" || true
	$(BIN)/python -c "import shopify_sync, dagster, polars, fastapi, moto, dagster_postgres, dagster_celery, dagster_k8s"
	@# pip compiles a wheel install (the Dockerfile's), not an editable one: where
	@# PYTHONDONTWRITEBYTECODE is set, every command would compile the package again (0.15 s).
	$(BIN)/python -m compileall -q shopify_sync
	@# An existing home's dagster.yaml may hold local edits (storage, ports): never overwrite
	@# it, but say plainly when it differs from the shipped one (e.g. older run monitoring).
	@mkdir -p $(DAGSTER_HOME); \
	if [ ! -f $(DAGSTER_HOME)/dagster.yaml ]; then cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml; \
	elif ! cmp -s dagster.yaml $(DAGSTER_HOME)/dagster.yaml; then \
	  echo "NOTE: $(DAGSTER_HOME)/dagster.yaml differs from ./dagster.yaml and was kept;" \
	       "review with: diff dagster.yaml $(DAGSTER_HOME)/dagster.yaml" \
	       "(or: make dagster-yaml to replace it)"; fi

dagster-yaml:
	@mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml && echo "copied dagster.yaml to $(DAGSTER_HOME)/"

demo: install
	$(BIN)/shopify-sync sync

dev: install
	$(BIN)/dagster dev -w workspace.yaml

test: install
	$(BIN)/ruff check shopify_sync shopify_sync_tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS)

lint: install
	$(BIN)/ruff check shopify_sync shopify_sync_tests bench
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest.py
