##@ Training (recipes/: Axolotl QLoRA on attention, every expert and the router)

# BASE_MODEL   a local folder or hub id; empty: the recipe's (mistralai/Mixtral-8x7B-Instruct-v0.1)
# DATA_DIR     holds processed/<variant>/{train,val}.jsonl (`make data`)
# TRAIN_OUTPUT outputs go to $(TRAIN_OUTPUT)/<variant>/ (adapter/, merged/, axolotl.yaml, train.log)
# OVERLAY      multi-GPU overlay: zero2, fsdp2, zero2-2nodes, ray (recipes/multigpu/)
# LAUNCHER     accelerate, torchrun or python; LAUNCHER_ARGS go after `--` (torchrun's --nnodes ...)
# VARIANT      the variant `make merge` merges; ADAPTER_DIR: its adapter (empty: the variant's)
BASE_MODEL ?=
DATA_DIR ?= data
TRAIN_OUTPUT ?= outputs
OVERLAY ?=
LAUNCHER ?= accelerate
LAUNCHER_ARGS ?=
VARIANT ?= tiny
ADAPTER_DIR ?=
# ALLOW_SAMPLE_DATA=1 lets a GPU recipe train on data built only from the embedded samples
ALLOW_SAMPLE_DATA ?=
# CPU_THREADS  CPU threads per training process (read from the environment by `python -m recipes train`,
#              so `make demo CPU_THREADS=1` works too); empty: on a CPU target, the usable cores shared
#              out among the processes of this machine (accelerate alone would give each one thread)
RECIPES_RUN = --base-model '$(BASE_MODEL)' --data-dir '$(DATA_DIR)' --output-root '$(TRAIN_OUTPUT)' --overlay '$(OVERLAY)'
RECIPES_LAUNCH = --launcher '$(LAUNCHER)' --launcher-args='$(LAUNCHER_ARGS)' $(if $(filter-out 0 no false,$(ALLOW_SAMPLE_DATA)),--allow-sample-data)

.PHONY: check-recipes train-tiny train-bilingual train-arabic train-english merge bench-recipes bench-distributed env-gpu

# Training reads what `make data` built (DATA_DIR) and never rebuilds it: run `make data` first.
check-recipes: env ## Validate every recipe offline: Axolotl's schema for its hardware + the project's rules
	@$(TEST_ENV) $(PY) -m recipes check

train-tiny: env tiny-model ## Train the tiny recipe on the CPU on what `make data` built (a couple of minutes): outputs/tiny/adapter
	@$(PY) -m recipes train tiny $(RECIPES_RUN) $(RECIPES_LAUNCH)

train-bilingual: env ## QLoRA-tune Mixtral-8x7B-Instruct on the bilingual data of `make data` (GPU; BASE_MODEL=...)
	@$(PY) -m recipes train bilingual $(RECIPES_RUN) $(RECIPES_LAUNCH)

train-arabic: env ## QLoRA-tune Mixtral-8x7B-Instruct on the Arabic data of `make data` (GPU; BASE_MODEL=...)
	@$(PY) -m recipes train arabic $(RECIPES_RUN) $(RECIPES_LAUNCH)

train-english: env ## QLoRA-tune Mixtral-8x7B-Instruct on the English data of `make data` (GPU; BASE_MODEL=...)
	@$(PY) -m recipes train english $(RECIPES_RUN) $(RECIPES_LAUNCH)

merge: env ## Merge VARIANT's adapter (default tiny) into its base, experts and router included: outputs/<variant>/merged
	@$(PY) -m recipes merge $(VARIANT) $(RECIPES_RUN) --adapter-dir '$(ADAPTER_DIR)'

bench-recipes: env tiny-model ## Tiny-recipe train steps/s on the CPU and packing efficiency on what `make data` built
	@$(PY) benchmarks/recipes_bench.py --data-dir '$(DATA_DIR)'

bench-distributed: env tiny-model ## The tiny recipe on 2 CPU processes (DDP, two torchrun nodes) against one: time, loss parity, a killed rank, resume
	@$(PY) benchmarks/bench_distributed.py

env-gpu: env ## GPU hosts: install requirements/gpu.txt (DeepSpeed) into .venv, constrained by the lock
	@$(PY) -m recipes install-gpu
