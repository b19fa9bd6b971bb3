# The two commands a fresh machine needs: `make up` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Install everything into .venv and run the whole stack on http://127.0.0.1:8000
up: install
	$(BIN)/tickmesh up

## Install what the tests need and run every test
test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .tickmesh build *.egg-info
