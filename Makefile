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
# Browser tests drive Debian's chromium; Playwright must never download its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test test-fast install browser train lint static checkov fuzz bench load local-stack sam clean test-retrain-312 asl retrain-curve labelled-reads

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

function/model/model.onnx: | $(BIN)/.installed
	$(BIN)/credit train

train: install
	$(BIN)/credit train

run: install function/model/model.onnx
	$(BIN)/credit serve --host $(HOST) --port $(PORT)

# The retrain's tests run once, under 3.12 (test-retrain-312), not again under the dev venv.
test: install browser sam static asl test-retrain-312
	$(BIN)/ruff check .
	$(BIN)/pytest -m '' $(addprefix --ignore=,$(RETRAIN_TESTS))

# The retrain's tests under Python 3.12, the RetrainFunction image's interpreter, with exactly the
# image's packages (training/requirements-retrain.txt) plus pytest and moto: a package the image
# lacks fails here, not in Lambda. Tests needing dev-only packages must importorskip them.
VENV_312 := .venv-312
$(VENV_312)/.installed: training/requirements-retrain.txt
	python3.12 -m venv $(VENV_312)
	$(VENV_312)/bin/pip install --quiet --upgrade "pip>=24,<27"
	$(VENV_312)/bin/pip install --quiet -r training/requirements-retrain.txt "pytest>=9.0,<9.3" "moto[server]>=5.2.5,<5.3"
	touch $@

RETRAIN_TESTS := tests/stack/test_retrain.py tests/training/test_export.py tests/stack/test_monitoring_run.py

test-retrain-312: $(VENV_312)/.installed
	PYTHONPATH=$(CURDIR):$(CURDIR)/function $(VENV_312)/bin/python -m pytest -m '' -q -p no:cacheprovider \
		$(RETRAIN_TESTS)

# Static security checks: bandit on the code (each exception a "# nosec" with its reason) and
# checkov on template.yaml (each exception an inline "checkov:skip=CKV_...: <reason>"), offline:
# no Bridgecrew/Prisma API key, no download of external checks or of its guideline mapping.
CHECKOV_VENV := .venv-checkov
CHECKOV := BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation \
	--quiet --compact --skip-download
static: install checkov
	$(BIN)/bandit -q -r function training infra bench
	$(CHECKOV)

$(CHECKOV_VENV)/.installed: infra/requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade "pip>=24,<27"
	$(CHECKOV_VENV)/bin/pip install --quiet -r infra/requirements-checkov.txt
	touch $@

checkov: $(CHECKOV_VENV)/.installed

# A long schemathesis campaign: about 20,000 generated requests (CI runs about 2,000).
fuzz: install
	set -o pipefail; FUZZ_EXAMPLES=2500 FUZZ_RANDOM=1 $(BIN)/pytest tests/function/test_fuzz.py -m '' -q -s -p no:logging \
		| grep -E "^fuzz|passed|failed"

# Debian's chromium for tests/web, installed only when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q \
		&& $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The state machines (infra/statemachine/*.asl.json) through npm's asl-validator, pinned, in its own
# folder; Debian's npm is installed only when missing. tests/stack/test_asl.py runs it too, on the
# definitions and on broken copies of them (it must refuse those).
ASL_DIR := .asl-validator
ASL_VALIDATOR := $(ASL_DIR)/node_modules/.bin/asl-validator
$(ASL_DIR)/.installed:
	@command -v npm >/dev/null || { $(SUDO) apt-get update -q \
		&& $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	npm install --silent --no-audit --no-fund --prefix $(ASL_DIR) asl-validator@4.0.0
	touch $@

asl: $(ASL_DIR)/.installed
	for definition in infra/statemachine/*.asl.json; do $(ASL_VALIDATOR) --json-path $$definition || exit 1; done

# aws-sam-cli (and its cfn-lint) in their own venv: they pin boto3/pydantic below .venv's.
SAM_VENV := .venv-sam
$(SAM_VENV)/.installed: infra/requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade "pip>=24,<27"
	$(SAM_VENV)/bin/pip install --quiet -r infra/requirements-sam.txt
	touch $@

sam: $(SAM_VENV)/.installed

# moto on 127.0.0.1:5000 with the template's bucket and table and the bundled champion.
local-stack: install
	$(BIN)/credit local-stack

# The function vs the obvious scikit-learn + pandas build, side by side; writes BENCHMARKS.md.
bench: install function/model/model.onnx
	$(BIN)/credit bench

# 1, 8, 32 and 64 concurrent clients against uvicorn and the Lambda handler, then an integrity
# check of the decision log; writes the load section of BENCHMARKS.md. A few minutes.
load: install function/model/model.onnx
	$(BIN)/credit load

# The retrain's training step (training.train.train with the retrain's bounded search) at 1,000,
# 10,000 and 100,000 rows, each in its own process: wall time and peak memory; writes the
# "Retrain time and memory by rows" section of BENCHMARKS.md. Long: tens of minutes on 2 cores
# (RETRAIN_CURVE_ARGS="--quick" for the quick protocol, labelled so in the table).
retrain-curve: install
	PYTHONPATH=$(CURDIR):$(CURDIR)/function $(BIN)/python -m bench.retrain_curve --write $(RETRAIN_CURVE_ARGS)

# What reading the labelled decisions costs: the old Scan against the outcome index (bench/labelled_reads.py).
labelled-reads: install
	PYTHONPATH=$(CURDIR):$(CURDIR)/function $(BIN)/python -m bench.labelled_reads --write $(LABELLED_READS_ARGS)

test-fast: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(ASL_DIR) .aws-sam .pytest_cache var
