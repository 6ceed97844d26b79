# The two commands of the README:
#   make run    start Letterbox on its embedded defaults (PostgreSQL and Maildir under ./var)
#   make test   lint, type-check and run the whole test suite
# Each installs what it needs into ./.venv first (again only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint openapi clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: $(VENV)/.base
	$(BIN)/letterbox serve

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

openapi: $(VENV)/.base
	$(BIN)/letterbox openapi --output openapi.yaml

clean:
	rm -rf $(VENV) var
