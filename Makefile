# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
# Test processes: one per core by default (pytest-xdist); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= auto

.PHONY: run test lint bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## Set up .venv, then start the background worker and the web app on http://localhost:$(PORT)
run: $(VENV)/.runtime
	$(BIN)/python -m medreview serve --port $(PORT)

## Set up .venv with test tools, then run the whole test suite (unit, AppTest, PostgreSQL/Redis, browser)
test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.dev
	$(BIN)/python bench/pneumoniamnist.py
