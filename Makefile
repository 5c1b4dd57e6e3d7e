# Two commands from a fresh clone (Linux/macOS):  make demo   and   make test
# Every target uses the repository's own virtual environment in .venv/, created on first use.
# Windows users: the README gives the same steps as plain venv/pip/pytest commands.

# The pins are for Python 3.11 (requirements.txt, each python_env.yaml): python3.11 where there is
# one, else python3; a venv is only made from a 3.11 (make ... PYTHON=/path/to/python3.11 chooses).
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
MLFLOW := $(BIN)/mlflow
# The embedded store at the repository root (see default_store.py and README "Where your runs go").
STORE_DB        := $(CURDIR)/mlflow.db
UI_PORT ?= 5000
# MLproject commands say `python ...`: put the venv first on PATH, as `source .venv/bin/activate` does.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install dev-install demo present test test-fast test-all lint notebook ui reset tour browser stack stack-down \
        stack-check compose-check local-llm local-llm-install align-install benchmarks clean

help:
	@echo "make install     create .venv: the pinned environment and the store's start-up hook (what the examples need)"
	@echo "make dev-install the same plus requirements-dev.txt (pytest, ruff, playwright: tests and lint)"
	@echo "make demo        create .venv, install, run the talk's hands-on steps end to end (present.py --no-pause)"
	@echo "make present     the same walk for a live class: pauses between steps (PRESENT=\"--ui --from 9\")"
	@echo "make reset       empty the repository's store (mlflow.db, mlartifacts/) after a y/N question; FORCE=1"
	@echo "make test        create .venv if missing, run the test suite"
	@echo "make test-fast   the unit tier only (pytest -m unit): pure tests, about a minute"
	@echo "make test-all    lint, install the offline LLM and align extras and Chromium too, then run every test (what CI runs)"
	@echo "make lint        ruff check + ruff format --check (the repository's pyproject.toml)"
	@echo "make notebook    open the talk's census notebook (census_project/mlflow_census_demo.ipynb) in Jupyter, on the store"
	@echo "make ui          open the MLflow UI on the repository's store (http://127.0.0.1:$(UI_PORT))"
	@echo "make tour        screenshot the talk's MLflow UI steps into docs/ui/ (STORE=<folder|sqlite URI> for another store)"
	@echo "make browser     install Debian's chromium for the tour and the browser test (when root and missing)"
	@echo "make stack       start PostgreSQL + S3 stand-in + mlflow server natively (no Docker)"
	@echo "make stack-down  stop it                  (make stack AUTH=1: classroom mode, logins from .env)"
	@echo "make stack-check run the stack checks against 'make stack' (examples, rows, objects, restart)"
	@echo "make compose-check  the CI's compose job: docker compose up, the same checks, down -v (needs Docker)"
	@echo "make local-llm   install and start the offline OpenAI-compatible LLM server"
	@echo "make local-llm-install  only install it (builds llama.cpp once, ~2 min; make demo builds it during its ML steps)"
	@echo "make align-install  the optional extra for llmops_project's align (dspy, litellm, gepa; make demo does it too)"
	@echo "make benchmarks  run the benchmark scripts and print their figures"
	@echo "make clean       delete .venv, .stack/ and .local-llm/ (keeps your runs: mlflow.db, mlartifacts/)"

# --- environment -----------------------------------------------------------------------------
# The pinned requirements go in with uv (a pip-compatible installer, itself a wheel from PyPI): the
# same pins and the same packages as `pip install -r` (the README's Windows steps), in ~35 s instead
# of ~2 min (measured from a fresh clone: README, "Tests"). --compile-bytecode, as pip does: without
# the .pyc files, every process would compile MLflow's sources again wherever PYTHONDONTWRITEBYTECODE
# is set (CI images often set it; a test run here was not half done after 16 min). pip stays for the
# offline LLM extra, whose llama.cpp build pip caches.
UV_VERSION := 0.13.8
PIP_VERSION := 26.3  # also the build dependency of each python_env.yaml (tests/test_mlprojects.py)
# (a .venv made before uv was used gets it here too)
UV_INSTALL  = $(PY) -m uv --version 2>/dev/null | grep -q " $(UV_VERSION)" || \
              $(PY) -m pip install --quiet uv==$(UV_VERSION); $(PY) -m uv pip install --quiet --compile-bytecode --python $(PY)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  echo "error: the pinned environment needs Python 3.11, and $(PYTHON) is $$($(PYTHON) --version 2>/dev/null || echo 'not found'). Install Python 3.11 (python.org; macOS: brew install python@3.11), then run make again, with PYTHON=<its path> if it is not python3.11 on PATH" >&2; \
	  exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)

# Re-installs only when requirements.txt changes.
$(VENV)/.installed: requirements.txt | $(PY)
	$(UV_INSTALL) -r requirements.txt
	$(PY) default_store.py install
	@touch $@

install: $(VENV)/.installed

# Tests, lint and static checks: requirements-dev.txt (which includes requirements.txt).
$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(UV_INSTALL) -r requirements-dev.txt
	@touch $@

dev-install: $(VENV)/.dev-installed

# --- the examples, end to end: the talk's hands-on steps (present.py) --------------------------
# Without OPENAI_API_KEY the LLM steps run on the offline model, installed once (a few minutes of
# compiling the first time). When it is not installed yet (or local-llm-install's inputs changed),
# present.py compiles it in the background while the ML steps run (they keep one of two cores busy),
# and the first LLM step waits for it and installs it (BUILD_OFFLINE_MODEL; README, "Tests"). If it
# cannot be built, the other steps still run and the walk ends with a block saying what did not run
# and how to fix it (exit status 1).
BUILD_OFFLINE_MODEL = $$(if [ -z "$$OPENAI_API_KEY" ] && ! $(MAKE) -q $(VENV)/.local-llm-installed; then \
                        echo --build-offline-model; fi)
demo: install align-install
	@options="--no-pause $(BUILD_OFFLINE_MODEL)"; echo "$(PY) present.py $$options"; $(PY) present.py $$options
	@echo
	@echo "Every example ran. Its runs, models, prompts and traces are in $(STORE_DB)."
	@echo "Open the MLflow UI with:  make ui   (then browse to http://127.0.0.1:$(UI_PORT))"

# For instructors: the same walk, pausing between steps (PRESENT="--ui --from 9" passes options).
present: install
	@options="$(BUILD_OFFLINE_MODEL) $(PRESENT)"; echo "$(PY) present.py $$options"; $(PY) present.py $$options

# --- tests -----------------------------------------------------------------------------------
# Two tiers (tests/conftest.py marks them): unit = pure tests (no store, server, `mlflow run` or
# model); e2e = the rest. `make test` runs both, on three pytest-xdist workers; each test file stays
# on one worker (--dist loadfile), so a module's shared runs are made once; the files go out in the
# order tests/conftest.py collects them, longest first (--no-loadscope-reorder keeps that order:
# xdist's own puts the files with most tests first, which left the census walk to run alone at the end).
# Three workers on two cores: a test spends much of its time waiting (servers starting, `mlflow run`
# processes), and a third worker fills those gaps (CI's pytest, measured on an earlier suite: 21 min 45 s on two workers,
# 18 min 22 s on three).
# PYTEST_XDIST= runs them one at a time. Before a commit, `pre-commit install` once makes git run the same ruff checks as
# `make lint` (.pre-commit-config.yaml).
PYTEST_XDIST ?= -n 3 --dist loadfile --no-loadscope-reorder

# make test leaves out the tests of the optional extras (markers local_llm and align), which make demo
# installs: the same suite, and the same <= 10 min, before and after make demo. make test-all runs them.
EXTRAS_TESTS := local_llm or align
test: dev-install
	$(PY) -m pytest $(PYTEST_XDIST) -m "not ($(EXTRAS_TESTS))"

test-fast: dev-install
	$(PY) -m pytest -m unit

# CI's command: the same suite plus the optional offline LLM extra and the system browser, so the
# real-local-model test and the browser test run instead of being skipped (a missing browser fails, and
# so does an objdump that cannot show the build has no AMX instructions).
test-all: dev-install local-llm-install align-install lint browser
	UI_TEST_REQUIRE_BROWSER=1 LOCAL_LLM_TEST_REQUIRE_OBJDUMP=1 $(PY) -m pytest $(PYTEST_XDIST)

lint: dev-install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# --- the talk's census notebook, the "before" of census_project's MLflow Project ------------------
# The venv's Jupyter: its start-up hook points the server, hence every kernel it starts (the venv's
# python3 kernel), at the repository's store. NOTEBOOK_OPTIONS="--no-browser --port 8889" passes options.
notebook: install
	$(BIN)/jupyter notebook $(NOTEBOOK_OPTIONS) census_project/mlflow_census_demo.ipynb

# --- the UI on the embedded store; an empty store for a new class ---------------------------------
ui: install
	$(PY) default_store.py ui --port $(UI_PORT)

# Asks y/N first; FORCE=1 make reset does not ask.
reset: install
	FORCE=$(FORCE) $(PY) default_store.py reset

# --- the MLflow UI in a real browser: docs/ui_tour.py and tests/test_ui_browser.py ------------------
# Playwright (requirements-dev.txt) drives the system's browser and downloads none: Debian's chromium
# on Linux, installed here when root (CI) and missing; an installed Google Chrome on macOS.
browser:
	@if [ "$$(uname -s)" != Linux ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make browser: installing Debian's chromium (apt-get, about a minute)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "make browser: Chromium is missing. Install it once with: sudo apt-get install chromium"; exit 1; \
	fi

# One PNG per "look at the MLflow UI" step of the talk, in docs/ui/, from the repository's store
# (after `make demo`) or from STORE=<folder holding mlflow.db | sqlite:///...>.
tour: dev-install browser
	$(PY) docs/ui_tour.py $(if $(STORE),--store "$(STORE)")

# --- the team tracking server, natively (docker-compose.yml runs the same stack in Docker) -----
# Data and logs in .stack/; ports: MLflow 5000, PostgreSQL 15432, S3 9000 (see tracking_server/README.md).
# AUTH=1: classroom mode (basic-auth); the admin password and Flask secret key come from .env.
stack: install
	$(PY) tracking_server/stack.py up $(if $(filter 1 yes true,$(AUTH)),--auth)

stack-down:
	@if [ -x $(PY) ]; then $(PY) tracking_server/stack.py down; else echo "No .venv: nothing to stop."; fi

# The checks tests/test_stack.py runs, against the running `make stack` (it logs to its experiments
# and restarts its mlflow server). CHECKS="tracking restart" runs some only.
CHECKS ?=
STACK_CHECK = tracking_server/check_stack.py $(1) $(if $(CHECKS),--only $(CHECKS))
stack-check: install
	$(PY) $(call STACK_CHECK,native)

# The CI's compose job, on any machine with Docker: the same checks against docker-compose.yml's stack.
# Its own project name, so `down -v` deletes only the check's volumes, never your stack's data
# (stop your stack first: both publish port 5000). Uses .env, copied from .env.example if missing.
compose-check: export COMPOSE_PROJECT_NAME = mlops-tracking-check
compose-check: dev-install
	@test -f .env || cp .env.example .env
	@status=0; set -x; docker compose up -d --wait --build || status=$$?; \
	if [ $$status -eq 0 ]; then $(PY) $(call STACK_CHECK,compose) || status=$$?; fi; \
	if [ $$status -ne 0 ]; then docker compose ps -a; docker compose logs --no-color --tail 80; fi; \
	docker compose down -v; exit $$status

# --- the offline LLM -------------------------------------------------------------------------
# Optional extra (not in requirements.txt): install.py compiles llama.cpp the first time, for a
# portable instruction set (never the building CPU's own: AMX crashes, see local_llm/README.md),
# ~2 min on 2 cores (measured 1 min 35-44 s); it keeps the wheel, so later installs take seconds. It shows the build's
# progress, stops at once with one line if there is no C/C++ compiler, and ends with one real
# inference in a separate process (serve.py --check): a crash there is one line and a non-zero exit.
# Re-runs only when requirements-local-llm.txt or install.py change (or the last check failed).
LOCAL_LLM_PORT ?= 8080

# install.py itself leaves $(VENV)/.local-llm-installed once its check passed (present.py runs it too).
$(VENV)/.local-llm-installed: requirements-local-llm.txt llmops_project/local_llm/install.py $(VENV)/.installed
	@$(PY) llmops_project/local_llm/install.py

local-llm-install: $(VENV)/.local-llm-installed

# Foreground; Ctrl+C stops it. It prints the OPENAI_BASE_URL / OPENAI_API_KEY lines to use.
local-llm: local-llm-install
	$(PY) llmops_project/local_llm/serve.py --host 127.0.0.1 --port $(LOCAL_LLM_PORT)

# --- the optional extra of llmops_project's align: dspy, litellm, gepa (requirements-align.txt says why
# it is an extra: +245 MiB, and litellm makes every traced process of the venv ~3 s slower) -----------
$(VENV)/.align-installed: requirements-align.txt $(VENV)/.installed
	$(UV_INSTALL) -r requirements-align.txt
	@touch $@

align-install: $(VENV)/.align-installed

# Maintainer figures (README "Benchmarks"), each printed with the machine's load average: the ones
# that need no extra service. The others need theirs: benchmarks/local_llm.py (a running local-llm),
# offline_llm_flow.py and offline_agent_tool_calls.py (the offline LLM extra: make local-llm-install),
# classroom_load.py (PostgreSQL, as make stack). `python benchmarks/<name>.py --help` tells each one.
benchmarks: install
	$(PY) benchmarks/census_search.py
	$(PY) benchmarks/llm_generation_loop.py

clean:
	rm -rf $(VENV) .pytest_cache .stack .local-llm
	@echo "Kept mlflow.db and mlartifacts/ (your runs): make reset empties them."
