# stockdata: `make demo` runs the whole system embedded; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9

.PHONY: demo test lint format bench lock install assets browser clean help

help:  ## Show the targets.
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed-dev: requirements/dev.lock pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The explorer page's and /docs' front-end files, copied from the npm packages: the API serves
# them itself (no CDN at run time). The folder is generated, not committed.
VENDOR := query_api/static/vendor
$(VENDOR)/.installed: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js $(VENDOR)/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/
	@touch $@

assets: $(VENDOR)/.installed  ## Copy the front-end files (chart, Swagger UI) from node_modules.

# The browser tests drive Debian's chromium (no browser download of its own).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
	else \
	  echo "the browser tests need Debian's chromium: run 'sudo apt-get install -y chromium'" >&2; exit 1; \
	fi

browser: $(CHROMIUM)  ## Install Debian's chromium for the browser tests (as root).

install: $(VENV)/.installed-dev  ## Create .venv and install the locked dependencies.

demo: install assets  ## Run the whole system embedded with sample data, then serve on :8000.
	$(BIN)/stockdata demo

test: install node_modules/.installed assets browser  ## Run every test (unit + integration, real services).
	$(BIN)/python -m pytest

lint: install  ## ruff (lint + format check) and mypy.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install  ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## Run the benchmarks and rewrite docs/BENCHMARKS.md.
	$(BIN)/python -m bench
	$(BIN)/python -m bench api --tickers 20000

lock: | $(UV)  ## Re-resolve requirements/*.lock from pyproject.toml.
	$(UV) pip compile pyproject.toml --python-version 3.11 -q -o requirements/lock.txt
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements/dev.lock

clean:  ## Remove the virtualenv, node_modules and embedded state.
	rm -rf $(VENV) node_modules .stockdata .pytest_cache .mypy_cache .ruff_cache
