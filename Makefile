# The two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PORT ?= 8000
HOST ?= 127.0.0.1
TENANT ?= default

.PHONY: run key test test-fast lint format bench dashboard chromium nginx faketime promtool clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,browser]'
	rm -f $(VENV)/.installed-* && touch $@

# The dashboard's front-end packages (package.json, pinned by package-lock.json) into
# node_modules/: Plotly's cartesian bundle, which /vendor/plotly.min.js serves. Without npm
# the dashboard serves the plotly Python package's full bundle (4.8 MB) and says so.
NODE_STAMP := node_modules/.installed-$(shell sha256sum package-lock.json | cut -c1-12)

$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the dashboard will serve Plotly's full 4.8 MB bundle" >&2; fi

## run: install, start the embedded service (SQLite + filesystem broker) and a demo job
##      on http://$(HOST):$(PORT) (make run PORT=8123)
run: $(STAMP) $(NODE_STAMP)
	$(BIN)/deltaflow up --demo --host $(HOST) --port $(PORT)

## key: print a new API key alone (make key TENANT=acme); the venv's deltaflow is not on PATH
key:
	@test -x $(BIN)/deltaflow || { echo "no $(BIN)/deltaflow yet: run make run first" >&2; exit 1; }
	@$(BIN)/deltaflow create-key --tenant $(TENANT)

## test: install, check style and layering, run every test (starts PostgreSQL/Redis if needed)
test: $(STAMP) $(NODE_STAMP) chromium nginx faketime promtool lint
	CI=$${CI:-} $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

## test-fast: unit tests only (no services, no browser)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not faults and not browser and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check service worker deltaflow_client tests benchmarks migrations docs
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format service worker deltaflow_client tests benchmarks migrations docs
	$(BIN)/ruff check --fix service worker deltaflow_client tests benchmarks migrations docs

## bench: the engine against PyTorch CPU and scikit-learn, printed as ratios
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/engine.py

## dashboard: the dashboard's front-end packages (npm ci; make run and make test do it)
dashboard: $(NODE_STAMP)

## chromium: Debian's Chromium for the browser tests (Playwright cannot download one here)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

## nginx: Debian's nginx, which the proxy tests run in front of the API (no Docker needed)
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nginx >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq nginx >/dev/null; fi; }

## faketime: Debian's libfaketime, which runs workers with a wrong clock (tests/faults/test_clock_skew.py)
faketime:
	@command -v faketime >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq faketime >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq faketime >/dev/null; fi; }

## promtool: Prometheus's rule checker, unpacked from Debian's package into the venv (no
##           service installed or started), for tests/e2e/test_monitoring.py
promtool:
	@test -x $(VENV)/promtool/usr/bin/promtool || command -v promtool >/dev/null 2>&1 || { \
	  mkdir -p $(VENV)/promtool && cd $(VENV)/promtool && \
	  { apt-get download prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get download prometheus >/dev/null; }; } && \
	  dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb; }

clean:
	rm -rf $(VENV) var .pytest_cache node_modules
