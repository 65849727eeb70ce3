# Two commands on a fresh machine: `make demo` and `make test`. Both build the venv themselves.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint typecheck unit cfn checkov demo bench chaos clean openapi contract

venv: $(STAMP)

# Re-installs only when the dependency declarations change.
$(STAMP): pyproject.toml layers/gateway/requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,local]'
	@touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -q -c pyproject.toml -r layers/gateway/spcs_gateway -ll

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -n 2 -q

cfn: venv
	@if [ -f template.yaml ]; then $(BIN)/cfn-lint template.yaml; else echo "cfn-lint: no template.yaml yet"; fi

# checkov on template.yaml and on its SAM translation (tests/infra/sam_translation.py): zero failed
# checks; every skip carries its reason in the template (Metadata: checkov: skip). checkov pins
# boto3 1.35 and packaging 23, older than this project's, so it gets a venv of its own inside
# .venv, installed once (about 40 s) and reused. --skip-download: no network, no platform upload.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := $(VENV)/checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP): | venv
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV) || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	@touch $@

checkov: venv $(CHECKOV_STAMP)
	$(BIN)/python tests/infra/sam_translation.py $(CHECKOV_VENV)/translated.json
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		-f template.yaml -f $(CHECKOV_VENV)/translated.json

test: lint typecheck unit cfn checkov

# Services start suspended: the first events resume each once, poison lands in the DLQs,
# everything else gets a result row, the services suspend after idling (infra/local/STACK.md).
demo: venv
	$(BIN)/spcs-local demo --start-suspended \
		--json-summary .spcs-local/demo/summary.json --artifacts .spcs-local/demo/artifacts

bench: venv
	$(BIN)/python -m bench

# 10,000 events through the local stack under 503/429/dropped-connection/latency faults, a SQL
# suspension and two crashed containers, then a drain; reconciled: lost = 0, duplicates = 0,
# DLQ = the poison (docs/RELIABILITY.md). Writes bench/results/chaos.json. Options go in
# CHAOS_ARGS: `make chaos CHAOS_ARGS="--cpus 1"` is the slow-machine check (the whole stack on
# one CPU, bench/results/chaos-1cpu.json); `--events N --seed S` for smaller runs.
CHAOS_ARGS ?=
chaos: venv
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

# Regenerate the committed OpenAPI document of the on-demand API (a test fails when it is stale).
openapi: venv
	$(BIN)/python -m spcs_gateway.api.openapi > openapi.json

# openapi.json against the API that `spcs-local up` serves, with Schemathesis (also in `unit`).
contract: venv
	$(BIN)/pytest -q -n 0 tests/api/test_api_contract.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The model deployment tool's own venv (infra/models/README.md): snowflake-ml-python cannot be
# installed next to this project's snowflake-connector-python 5.x, so the tool gets a venv of
# its own with the project installed without its dependencies (spcs_models needs none of them).
MODELS_VENV := infra/models/.venv
.PHONY: models-venv
models-venv: $(MODELS_VENV)/.installed

$(MODELS_VENV)/.installed: infra/models/requirements-deploy.txt pyproject.toml
	@test -x $(MODELS_VENV)/bin/python || $(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_VENV)/bin/python -m pip install -q --upgrade pip
	$(MODELS_VENV)/bin/python -m pip install -q -r infra/models/requirements-deploy.txt
	$(MODELS_VENV)/bin/python -m pip install -q --no-deps -e .
	@touch $@
