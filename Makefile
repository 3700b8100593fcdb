# BiMediX recipes: the front door. `make help` lists every target.
# Targets are one-line calls into Python; the logic lives in bimedix/ and the stage folders.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The Python that runs bimedix/envs.py (standard library only). The environments are made with Python
# 3.12: PYTHON itself when you set it (`make env PYTHON=/path/to/python3.12`), else python3.12 on PATH
# or under pyenv.
PYTHON ?= python3
ENV_PYTHON := $(if $(filter command line environment,$(origin PYTHON)),--python $(PYTHON))
VENV := .venv
SERVE_VENV := .venv-serve
PY := $(VENV)/bin/python
SERVE_PY := $(SERVE_VENV)/bin/python
TINY_MODEL ?= models/tiny-bimedix-moe

# Every Python call sees the repository root; nothing is installed into the environments by hand.
export PYTHONPATH := $(CURDIR)
export TOKENIZERS_PARALLELISM := false
# Tests never touch the network: no hub downloads, no dataset downloads.
TEST_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

##@ Setup

.PHONY: help
help: ## List every target with one line each
	@awk 'BEGIN {FS = ":.*## "} \
	  /^##@/ {printf "\n%s\n", substr($$0, 5); next} \
	  /^[a-zA-Z0-9_.-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo

.PHONY: env
env: ## Create the main environment (.venv: data, training, eval) from requirements/main.lock, with uv
	@$(PYTHON) -m bimedix.envs ensure main $(ENV_PYTHON)

.PHONY: env-serve
env-serve: ## Create the serving environment (.venv-serve: FastChat) from requirements/serve.lock, with uv
	@$(PYTHON) -m bimedix.envs ensure serve $(ENV_PYTHON)

.PHONY: lock
# UPGRADE=1: the newest releases requirements/*.in allow (otherwise the locks' pins stay where they still fit).
UPGRADE ?=
lock: ## Re-resolve requirements/*.in into the lock files with uv (universal, hashed), from the package index alone
	$(PYTHON) -m bimedix.envs lock main $(if $(filter-out 0 no false,$(UPGRADE)),--upgrade)
	$(PYTHON) -m bimedix.envs lock serve $(if $(filter-out 0 no false,$(UPGRADE)),--upgrade)

.PHONY: check-locks
check-locks: ## Resolve every lock again against the package index alone (no local wheels); fails on any drift
	$(PYTHON) -m bimedix.envs check

.PHONY: tiny-model
tiny-model: env ## Build the tiny bilingual Mixtral (8 experts, top-2) in models/, offline
	@$(TEST_ENV) $(PY) -m bimedix.tiny_model --out $(TINY_MODEL)

##@ Quality

.PHONY: lint
lint: env ## ruff format --check and ruff check
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

.PHONY: format
format: env ## Rewrite the code in the house format (ruff format, ruff check --fix)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Test processes (pytest-xdist): one per core, at most 4 (each holds torch and Axolotl, 1-2 GB).
# tests/conftest.py schedules them: whole files, heavy ones first, files sharing a fixture together.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))

.PHONY: test
test: lint env env-serve tiny-model ## Lint, then every test, offline (main env, then serving env), TEST_WORKERS processes
	$(TEST_ENV) $(PY) -m pytest tests --ignore=tests/serve -n $(TEST_WORKERS) --durations=10
	$(TEST_ENV) $(SERVE_PY) -m pytest tests/serve -n $(TEST_WORKERS) --durations=5

# The stages add their targets here (data, train-*, merge, eval, serve, demo, bench).
include $(sort $(wildcard bimedix/*.mk data_prep/*.mk recipes/*.mk eval_tasks/*.mk serve/*.mk demo/*.mk benchmarks/*.mk))

##@ Housekeeping

.PHONY: clean
clean: ## Remove what the pipeline produced (models/, data/, outputs/, results/, logs/); keeps the envs
	rm -rf models data outputs results logs build

.PHONY: distclean
distclean: clean ## clean, and remove both environments and the project's uv (.uv/; uv's download cache stays)
	rm -rf $(VENV) $(SERVE_VENV) .uv
