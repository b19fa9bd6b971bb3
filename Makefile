# The two commands a fresh machine needs: `make up` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
WEB_DIST  := web/apps/dashboard/dist/index.html

.PHONY: up test lint test-python test-web install web clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# The official AsyncAPI parser that validates contracts/asyncapi.yaml (tests/ops/test_asyncapi.py).
ASYNCAPI_STAMP := ops/asyncapi/node_modules/.installed
$(ASYNCAPI_STAMP): ops/asyncapi/package.json ops/asyncapi/package-lock.json
	cd ops/asyncapi && npm ci --no-audit --no-fund
	touch $(ASYNCAPI_STAMP)

# The web workspace (TypeScript client, React hooks, dashboard), from the committed lock file.
$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

$(WEB_DIST): $(WEB_STAMP) $(shell find web/packages web/apps -path '*/node_modules' -prune -o -path '*/dist' -prune -o -type f -print 2>/dev/null)
	cd web && npm run build

web: $(WEB_DIST)

## Install everything into .venv, build the dashboard, run the whole stack on http://127.0.0.1:8000
up: install web
	$(BIN)/tickmesh up

## Install what the tests need and run every test (Python, then the web client and the browser)
test: lint test-python test-web

## Lint, format check and type check (ruff on everything Python; mypy on contracts/ and edge/ and what
## they import, through build/mypy: symlinks that lay the folders out as the tickmesh package)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf build/mypy && mkdir -p build/mypy/tickmesh
	for f in tickmesh/*; do ln -s ../../../$$f build/mypy/tickmesh/; done
	for d in contracts edge services ops; do ln -s ../../../$$d build/mypy/tickmesh/$$d; done
	cd build/mypy && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p tickmesh.contracts -p tickmesh.edge

## Three workers on two cores: most tests wait on real servers (nats-server, Hypercorn, the soak's
## clients), not on the CPU. A file stays on one worker, so its module fixtures start once.
## `pytest -n 0` runs serially; --durations names the slow tests in every run.
test-python: install $(ASYNCAPI_STAMP)
	$(BIN)/python -m pytest -n 3 --dist loadfile --durations=15

test-web: install web
	cd web && npm run check && npm test && npm run e2e

clean:
	rm -rf $(VENV) .tickmesh build *.egg-info web/node_modules web/apps/dashboard/dist ops/asyncapi/node_modules
