# `make run`: install everything and start the assistant on the default corpus.
# `make test`: install the test tools too and run the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test,cluster]'
	touch $@

# Builds (or updates) the index with a progress bar, then serves the chat and the API on
# http://127.0.0.1:7860 (set QA_ADMIN_TOKEN to enable adding articles from the browser).
run: $(VENV)/.installed
	$(BIN)/qa index build
	$(BIN)/qa serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check qa ui tests benchmarks
	$(BIN)/ruff format --check qa ui tests benchmarks
	$(BIN)/mypy qa ui

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`).
test: $(VENV)/.installed-test lint
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) index/gen-* index/manifest.json
