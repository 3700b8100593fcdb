##@ Data

# The mixes `make data` builds (one variant each); point MIX at your own mix file(s) to build
# from real files or hub ids, e.g. `make data MIX=data_prep/mixes/examples/hub_english.yaml`.
MIX ?= data_prep/mixes/bilingual.yaml data_prep/mixes/arabic.yaml data_prep/mixes/english.yaml
# The base model's tokenizer for the token counts (real runs: mistralai/Mixtral-8x7B-Instruct-v0.1).
DATA_TOKENIZER ?= $(TINY_MODEL)
# More flags for `python -m data_prep build`, e.g. --no-decontaminate, --strict.
DATA_FLAGS ?=
# The build decontaminates against what `make eval` scores: the same EVAL_DATA (sample, hub, or a
# folder / index file) and EVAL_DATA_ROOT (eval_tasks/eval.mk reads them too). Empty: sample.
# Records the benchmark generates (BiMed1.3M size); BENCH_DATA_RECORDS=50000 for a quick check.
BENCH_DATA_RECORDS ?= 1300000

.PHONY: data
data: tiny-model ## Build data/processed/{bilingual,arabic,english} from the embedded samples (MIX=... for real data)
	$(PY) -m data_prep build $(foreach m,$(MIX),--mix $(m)) --tokenizer $(DATA_TOKENIZER) --eval-data "$(EVAL_DATA)" --eval-data-root "$(EVAL_DATA_ROOT)" $(DATA_FLAGS)

.PHONY: bench-data
bench-data: env ## Benchmark the data build at BiMed1.3M size against a tokenizer-only pass (BENCH_DATA_RECORDS=...)
	$(PY) benchmarks/bench_data.py --records $(BENCH_DATA_RECORDS)

.PHONY: bench-formats
bench-formats: env ## Every real file in ../shared/realdata through data_prep convert and eval_tasks check-data: same items, same gold letters
	$(PY) benchmarks/bench_formats.py
