# One-command set-up: every target creates .venv and installs the locked stack when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# The company's configuration (stacks/<STACK>/: source catalog, vocabulary): `make demo
# STACK=vendor`. Unset: LAKEHOUSE_STACK from the environment, else the default stack.
STACK ?=
# `make demo STANDINS=1`: the catalog's connected objects pulled from stand-ins of their vendors'
# APIs on 127.0.0.1 (sample_company/standins/world.py) instead of read from files.
ifneq ($(strip $(STANDINS)),)
export LAKEHOUSE_DEMO_STANDINS := 1
endif
ifneq ($(strip $(STACK)),)
export LAKEHOUSE_STACK := $(STACK)
endif
# A stack other than the default gets a lake of its own (lake/stacks/<name>: its landing zone,
# tables, MLflow store, stand-in CRM and Dagster instance), so two companies never share a table.
# LAKEHOUSE_LAKE_ROOT / LAKEHOUSE_LANDING_ROOT / DAGSTER_HOME, when set, win.
ifneq ($(filter-out default,$(strip $(STACK))),)
STACK_LAKE := $(CURDIR)/lake/stacks/$(notdir $(STACK))
export LAKEHOUSE_LAKE_ROOT ?= $(STACK_LAKE)
export LAKEHOUSE_LANDING_ROOT ?= $(STACK_LAKE)/landing
export DAGSTER_HOME ?= $(STACK_LAKE)/.dagster
endif
export DAGSTER_HOME ?= $(CURDIR)/lake/.dagster
LAKE := $(or $(LAKEHOUSE_LAKE_ROOT),lake)
LANDING := $(or $(LAKEHOUSE_LANDING_ROOT),$(LAKE)/landing)
# The sample data `make demo` lands: the sample company's world in the stack's shapes, or, on the
# people stack, a person-only world (sample_company/people.py; PEOPLE_ARGS e.g. --persons 5000).
ifeq ($(notdir $(strip $(STACK))),people)
GENERATE := $(BIN)/python -m sample_company.people $(LANDING) $(PEOPLE_ARGS)
else ifneq ($(strip $(STANDINS)),)
# the world the vendors' stand-ins serve (sample_company/standins/world.py)
GENERATE := $(BIN)/python -m sample_company.cli --out $(LAKE)/standins/world
else
GENERATE := $(BIN)/python -m sample_company.cli --out $(LANDING)
endif

.PHONY: install demo test faults distributed ui dev bench lint lock evaluate-identity train-identity evaluate-models clean-lake system-deps mutants

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## demo: generate the sample company (the people stack: its person-only world) and materialize
## the whole graph on the embedded default
demo: install
	$(GENERATE)
	$(BIN)/python platform/demo.py

## test: the test suite (fast by default; slow/bench markers are opt-in), one test module per
## worker on TEST_WORKERS processes (default 2; 0 runs in this process)
TEST_WORKERS ?= 2
test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

## faults: the fault suite (docs/reliability.md): bad input, SIGKILL crashes, concurrent runs,
## idempotence, secrets; figures under tests/artifacts/faults
faults: install system-deps
	$(BIN)/python -m pytest -m faults

## distributed: the graph past one machine (README, "Running past one machine"): the lake on a
## local S3 API server, the instance and MLflow on PostgreSQL, steps on two Celery workers;
## figures under tests/artifacts/distributed
distributed: install system-deps
	$(BIN)/python -m pytest -m distributed

## ui: the UI as a person sees it: `make dev` (Dagster, Data Docs, MLflow) over a demo-built lake,
## driven by headless Chromium (tests/test_browser.py, tests/test_dagster_dev.py); screenshots
## under tests/artifacts
ui: install system-deps
	$(BIN)/python -m pytest -m ui

## system-deps: what the tests start besides Python (Debian packages): a PostgreSQL server (the
## destination tests; the distributed suite's instance and MLflow), Redis (the distributed suite's
## Celery broker), Chromium and its driver for the browser test. Installed only when missing.
system-deps:
	@missing=""; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian for the tests:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

## mutants: mutation testing of the guards (platform/mutants.py; not in CI: see docs/reliability.md
## for its duration): mutmut over the guard functions, then the named mutations of
## tests/mutations.toml; prints the score per guard and every survivor with its explanation
mutants: install
	$(BIN)/python platform/mutants.py $(MUTANTS_ARGS)

## bench: the whole graph at 5,000 accounts x 730 days, cold then one more day; figures under lake/bench;
## then the connectors' pulls against their stand-ins (platform/bench_connectors.py)
bench: install
	$(BIN)/python platform/bench.py $(BENCH_ARGS)
	$(BIN)/python platform/bench_connectors.py

## dev: on loopback, started and stopped together (platform/dev.py): the Dagster UI and daemon
## (DAGSTER_PORT, default 3000), the gates' Data Docs (LAKEHOUSE_DATA_DOCS_URL, default
## http://127.0.0.1:3001) and the MLflow UI (LAKEHOUSE_MLFLOW_UI_URL, default http://127.0.0.1:5000)
dev: install
	$(BIN)/python platform/dev.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## lock: re-resolve requirements.lock from pyproject.toml
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra distributed --python-version 3.11 -o requirements.lock

## evaluate-identity: identity_links vs the sample company's ground truth (precision, recall, F1)
evaluate-identity: install
	$(BIN)/python -m assets.entities.evaluate --lake $(LAKE) --truth $(LANDING)/_truth

## train-identity: learn the identity match weights from the lake's records (Splink: u by random
## sampling, m by EM over the blocking rules) into the stack's identity.weights.yaml; prints them
train-identity: install
	$(BIN)/python -m assets.entities.train --lake $(LAKE)

## evaluate-models: the champions' holdout AUC beside the oracle AUC of the planted hazards
evaluate-models: install
	$(BIN)/python -m assets.ml.evaluate --lake $(LAKE) --truth $(LANDING)/_truth

## clean-lake: delete the demo lake (with STACK=x, only that stack's lake)
clean-lake:
ifneq ($(STACK_LAKE),)
	rm -rf $(STACK_LAKE)
else
	rm -rf lake/landing lake/raw lake/entities lake/decisions lake/events lake/c360 lake/features lake/ml lake/mlflow lake/reverse_etl lake/crm lake/ops lake/gx_docs lake/identity lake/connectors lake/standins lake/.dagster lake/stacks
endif
