# Two commands matter: `make run` (serve the API and the web page on http://127.0.0.1:8000)
# and `make test` (the full test suite, as CI runs it). Both set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# sam build needs python3.12 for the Lambda runtime; pyenv has it but keeps python3 at 3.11.
export PYENV_VERSION ?= 3.11.7:3.12.1
export SAM_CLI_TELEMETRY := 0

.PHONY: run test test-fast install browser train lint bench local-stack clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

function/model/model.onnx: | $(BIN)/.installed
	$(BIN)/python -m training.train

train: install
	$(BIN)/python -m training.train

run: install function/model/model.onnx
	$(BIN)/uvicorn credit_api.main:app --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -m ''

test-fast: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache var
