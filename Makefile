# The two commands of the README:
#   make run    start Letterbox on its embedded defaults (PostgreSQL and Maildir under ./var)
#   make test   lint, type-check and run the whole test suite
# Each installs what it needs into ./.venv first (again only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint chromium postfix node-deps openapi clean

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

# The Postfix tests run a private instance of Debian's postfix (tests/support/postfix.py); install the
# package when we can, preseeded to "No configuration" and with service starts refused while it installs,
# so the machine's own Postfix is never configured or started. On CI its absence is an error.
postfix:
	@if [ ! -x /usr/sbin/postfix ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections || exit 1; \
	    guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      guard=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' >$$guard; chmod 755 $$guard; \
	    fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null; \
	    status=$$?; if [ -n "$$guard" ]; then rm -f $$guard; fi; exit $$status; \
	  elif [ "$${CI:-}" = true ]; then echo "postfix is missing and cannot be installed" >&2; exit 1; \
	  else echo "note: /usr/sbin/postfix is missing; the Postfix tests will be skipped" >&2; fi; \
	fi

# The console's tests run a real OpenID provider (oidc-provider) and the axe-core accessibility scan
# from tests/support/node; npm ci installs exactly what its package-lock.json names, again only when it changes.
node-deps: tests/support/node/node_modules/.package-lock.json

tests/support/node/node_modules/.package-lock.json: tests/support/node/package-lock.json
	@if command -v npm >/dev/null; then cd tests/support/node && npm ci --no-audit --no-fund --loglevel=error; \
	elif [ "$${CI:-}" = true ]; then echo "npm is missing: the console's OpenID and accessibility tests need it" >&2; exit 1; \
	else echo "note: npm is missing; the console's OpenID and accessibility tests will be skipped" >&2; fi

test: lint chromium postfix node-deps
	$(BIN)/pytest

openapi: $(VENV)/.base
	$(BIN)/letterbox openapi --output openapi.yaml

clean:
	rm -rf $(VENV) var
