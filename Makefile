# The two commands of the README:
#   make run    start Letterbox on its embedded defaults (PostgreSQL and Maildir under ./var)
#   make test   lint, type-check and run the whole test suite
# Each installs what it needs into ./.venv first (again only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint chromium openapi clean

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

# The browser test drives Debian's chromium; install it when we can (root with apt-get).
# On CI its absence is an error rather than a silently skipped test.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  elif [ "$${CI:-}" = true ]; then echo "chromium is missing and cannot be installed" >&2; exit 1; \
	  else echo "note: /usr/bin/chromium is missing; the browser test will be skipped" >&2; fi; \
	fi

test: lint chromium
	$(BIN)/pytest

openapi: $(VENV)/.base
	$(BIN)/letterbox openapi --output openapi.yaml

clean:
	rm -rf $(VENV) var
