# CareLoop: `make run` tries it, `make test` proves it. Every target creates .venv if missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENDOR := var/vendor
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_PATIENTS ?= 200

.PHONY: run test test-sqlite test-postgres lint typecheck assets install bench clean help

help:
	@echo "make run    set up and start CareLoop on SQLite with demo data at http://$(HOST):$(PORT)/"
	@echo "make test   set up and run the whole test suite (SQLite, then PostgreSQL when"
	@echo "            CARELOOP_TEST_DATABASE_URL is set)"
	@echo "make lint   ruff and mypy;  make bench   the registry benchmark (small)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

$(VENDOR)/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/chart.umd.min.js
	cp node_modules/@picocss/pico/css/pico.min.css $(VENDOR)/pico.min.css
	@touch $@

assets: $(VENDOR)/.stamp

run: install assets
	$(BIN)/careloop migrate --no-input -v 0
	$(BIN)/careloop demo --if-empty --patients $(DEMO_PATIENTS) --host http://$(HOST):$(PORT)
	$(BIN)/careloop serve --with-worker --fake-providers --host $(HOST) --port $(PORT)

# With PostgreSQL configured, the two engines run side by side (one core each), each with its
# own var directory; their reports are printed one after the other.
test: install assets
	@if [ -z "$$CARELOOP_TEST_DATABASE_URL" ]; then $(MAKE) --no-print-directory test-sqlite; exit $$?; fi; \
	base="$${CARELOOP_VAR_DIR:-$$PWD/var}"; mkdir -p "$$base/test-sqlite" "$$base/test-postgres"; \
	CARELOOP_VAR_DIR="$$base/test-sqlite" $(MAKE) --no-print-directory test-sqlite > "$$base/test-sqlite.log" 2>&1 & s=$$!; \
	CARELOOP_VAR_DIR="$$base/test-postgres" $(MAKE) --no-print-directory test-postgres > "$$base/test-postgres.log" 2>&1 & p=$$!; \
	wait $$s; rs=$$?; wait $$p; rp=$$?; \
	echo "== SQLite"; cat "$$base/test-sqlite.log"; echo "== PostgreSQL"; cat "$$base/test-postgres.log"; \
	echo "SQLite exit $$rs, PostgreSQL exit $$rp"; [ $$rs -eq 0 ] && [ $$rp -eq 0 ]

test-sqlite: install assets
	CARELOOP_DATABASE_URL= $(BIN)/pytest -q -p no:cacheprovider

test-postgres: install assets
	@if [ -n "$$CARELOOP_TEST_DATABASE_URL" ]; then \
		echo "== PostgreSQL: $$CARELOOP_TEST_DATABASE_URL"; \
		CARELOOP_DATABASE_URL="$$CARELOOP_TEST_DATABASE_URL" $(BIN)/pytest -q -p no:cacheprovider; \
	else echo "(PostgreSQL run skipped: CARELOOP_TEST_DATABASE_URL is not set)"; fi

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

bench: install
	$(BIN)/careloop bench registry --size small --database sqlite --json var/bench-registry.json

clean:
	rm -rf $(VENV) node_modules $(VENDOR) var/static
