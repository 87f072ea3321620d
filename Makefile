# The one way in. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.12: so do the tests. pyenv's 3.12 when there is one, else python3.12 on PATH.
PYTHON312 ?= $(shell ls $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1 || command -v python3.12)
ifeq ($(strip $(PYTHON312)),)
PYTHON312 := python3.12
endif
VENV := .venv
SAM_VENV := .venv-sam
# checkov pins boto3 and packaging below the project's pins: it gets a virtualenv of its own too.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
# sam build looks for python3.12 on PATH; where it comes from pyenv, its shims find it with this
# (the version is the directory PYTHON312 was found in, e.g. 3.12.1).
ifneq ($(findstring /.pyenv/versions/,$(PYTHON312)),)
export PYENV_VERSION ?= $(notdir $(patsubst %/bin/python3.12,%,$(PYTHON312)))
endif
export SAM_CLI_TELEMETRY := 0
# The interpreter layers/runcreds/Makefile installs and compiles the layer with (sam build runs it).
# An absolute path: SAM runs that Makefile in a copy of its folder.
export LAYER_PYTHON ?= $(if $(findstring /,$(PYTHON312)),$(abspath $(PYTHON312)),$(PYTHON312))

.PHONY: help demo up test lint typecheck complexity validate scan build deploy unit integration bench clean openapi mutation mutation-recheck

help:
	@echo "make demo    run the end-to-end demo on the embedded AWS (moto on 127.0.0.1)"
	@echo "make test    lint, typecheck, sam validate --lint, checkov, sam build, unit and integration tests"
	@echo "make up      keep the embedded stack running (API on localhost, events accepted)"
	@echo "make bench   benchmarks in bench/"
	@echo "make deploy  sam build, then sam deploy with samconfig.toml (your AWS credentials, your account)"

# The three packages, editable: the server (with its Lambda extra), the command line, the development kit.
PACKAGES := layers/runcreds/pyproject.toml client/pyproject.toml devkit/pyproject.toml
$(VENV)/.installed-local: $(PACKAGES)
	test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e './layers/runcreds[lambda]' -e ./client -e ./devkit
	touch $@

$(VENV)/.installed-dev: $(PACKAGES) $(VENV)/.installed-local $(CHECKOV_VENV)/.installed
	$(PY) -m pip install --quiet -e './devkit[test]'
	touch $@

# aws-sam-cli pins its own boto3: it gets a virtualenv of its own.
$(SAM_VENV)/.installed: Makefile
	test -x $(SAM_VENV)/bin/python || $(PYTHON312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli==1.170.0'
	touch $@

$(CHECKOV_VENV)/.installed: Makefile
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON312) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

demo: $(VENV)/.installed-local
	$(VENV)/bin/runcreds local demo

# `make up AWS_PORT=4567 API_PORT=3001` when the defaults are taken.
AWS_PORT ?= 4566
API_PORT ?= 3000
up: $(VENV)/.installed-local
	$(VENV)/bin/runcreds local up --port $(AWS_PORT) --api-port $(API_PORT)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

# Cyclomatic complexity gate (radon's ranks): no block worse than D, no module worse than B, A on average.
complexity: $(VENV)/.installed-dev
	$(VENV)/bin/xenon --max-absolute D --max-modules B --max-average A layers/runcreds/runcreds client/runcreds_cli devkit/runcreds_dev functions

validate: $(SAM_VENV)/.installed
	$(SAM) validate  # --lint and the build flags come from samconfig.toml

# checkov reads the SAM resources (Globals included) itself; every skip is in template.yaml's
# Metadata with its reason. --skip-download: offline, no platform calls.
scan: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

build: $(SAM_VENV)/.installed
	$(SAM) build

# Into your own AWS account, with the credentials in your environment; parameters from samconfig.toml
# (OrchestratorPrincipalArns has no default: pass it with PARAMS="OrchestratorPrincipalArns=arn:...").
deploy: build
	$(SAM) deploy $(if $(PARAMS),--parameter-overrides $(PARAMS))

# The committed OpenAPI document, generated from the resolver; tests/unit/test_openapi.py fails when stale.
openapi: $(VENV)/.installed-dev
	$(PY) -m runcreds_dev.openapi > docs/openapi.json

unit: $(VENV)/.installed-dev
	$(VENV)/bin/pytest tests/unit

integration: $(VENV)/.installed-dev
	$(VENV)/bin/pytest tests/integration

test: lint typecheck complexity validate scan build
	$(VENV)/bin/pytest

# Mutation testing (slow; not part of `make test`): claims and completions, the vend, STS calls
# and the fault classification ([tool.mutmut] in pyproject.toml; docs/reliability.md, Mutation testing).
# src/ holds links to the two packages for the run only (mutmut names modules by path, less src/). Some
# mutants only: `make mutation MUTMUT_ARGS='runcreds.dal.credentials*'`.
MUTMUT_SRC = rm -rf src && mkdir src && ln -s ../layers/runcreds/runcreds src/runcreds \
	&& ln -s ../client/runcreds_cli src/runcreds_cli
mutation: $(VENV)/.installed-dev
	rm -rf mutants
	$(MUTMUT_SRC)
	PYTHONPATH= $(VENV)/bin/mutmut run --max-children 2 $(MUTMUT_ARGS); status=$$?; rm -rf src; exit $$status
	$(MUTMUT_SRC); $(VENV)/bin/mutmut results; rm -rf src

# The named mutants of the last `make mutation` (mutants/) against TESTS, in one pytest session
# (tests/mutation_recheck.py; the embedded stack starts once): `make mutation-recheck NAMES=names.txt
# OUT=verdicts.json TESTS='tests/unit/test_worker_checks.py'` (docs/reliability.md, Mutation testing).
# COVERING=1: each mutant against only those of TESTS that call its function (mutants/mutmut-stats.json).
mutation-recheck: $(VENV)/.installed-dev
	rm -rf mutants/tests && cp -r tests mutants/tests
	cd mutants && RECHECK_NAMES=$(abspath $(NAMES)) RECHECK_OUT=$(abspath $(OUT)) PYTHONPATH=src:. \
		$(if $(COVERING),RECHECK_COVERING=$(abspath mutants/mutmut-stats.json)) \
		$(abspath $(VENV))/bin/python -m pytest -q -p no:cacheprovider -p no:timeout -p tests.mutation_recheck $(TESTS)

# Every benchmark, then one table of their ratios (medians with min and max, beside their goals).
bench: $(VENV)/.installed-local
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
