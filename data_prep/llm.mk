##@ LLM data stages (translation and chat synthesis; need an OpenAI-compatible endpoint)

# Endpoint: BIMEDIX_LLM_BASE_URL + BIMEDIX_LLM_MODEL (+ BIMEDIX_LLM_API_KEY), or LLM_ENDPOINT=file.yaml.
# `make data` never needs one. Extra options go in LLM_FLAGS (e.g. LLM_FLAGS="--limit 100 --keep-unverified").
LLM_INPUT ?= data_prep/llm/samples/mcq_sample.jsonl
LLM_FORMAT ?= mcq_json
LLM_RUN ?= data/llm/$(basename $(notdir $(LLM_INPUT)))
LLM_ENDPOINT ?=
LLM_FLAGS ?=
REVIEWED ?=
LLM_FAKE_PORT ?= 8765
# Real English/Arabic MMLU files for bench-qa (without them it runs on benchmarks/qa_sample/, and says so)
QA_REALDATA ?= ../shared/realdata
LLM_ENDPOINT_FLAG = $(if $(LLM_ENDPOINT),--endpoint $(LLM_ENDPOINT))

.PHONY: translate synthesize review-export review-import llm-fake-server test-llm bench-llm bench-qa
translate: env ## Translate LLM_INPUT (LLM_FORMAT) to Arabic with QA; outputs and review queue in LLM_RUN/translate
	@$(PY) -m data_prep.llm translate --input $(LLM_INPUT) --format $(LLM_FORMAT) --out $(LLM_RUN)/translate $(LLM_ENDPOINT_FLAG) $(LLM_FLAGS)

synthesize: env ## Doctor-patient chats from the MCQ items of LLM_INPUT into LLM_RUN/synthesize/chats.jsonl
	@$(PY) -m data_prep.llm synthesize --input $(LLM_INPUT) --format $(LLM_FORMAT) --out $(LLM_RUN)/synthesize $(LLM_ENDPOINT_FLAG) $(LLM_FLAGS)

review-export: env ## Write the translation review queue (CSV and JSON lines) to LLM_RUN/translate/review/
	@$(PY) -m data_prep.llm review-export --run $(LLM_RUN)/translate

review-import: env ## Import reviewed files (REVIEWED="a.csv b.jsonl") and rebuild LLM_RUN/translate outputs
	@$(PY) -m data_prep.llm review-import --run $(LLM_RUN)/translate $(REVIEWED)

llm-fake-server: env ## Serve the fault-injection fake LLM on 127.0.0.1:LLM_FAKE_PORT (try the stages offline)
	@$(PY) -m data_prep.llm.testing.fake_server --port $(LLM_FAKE_PORT)

test-llm: env ## Tests of the LLM stages only (offline, fault-injection server on 127.0.0.1)
	@$(TEST_ENV) $(PY) -m pytest tests/llm -q

bench-llm: env ## Throughput of the LLM client vs a 200 ms server: capacity ratio, speed-up, overhead per item
	@$(PY) benchmarks/llm_throughput.py

bench-qa: env ## Translation QA on real EN/AR MMLU pairs (QA_REALDATA): reject rates, corruptions caught -> results/qa_calibration.json
	@$(PY) benchmarks/bench_qa.py --realdata $(QA_REALDATA) --out results/qa_calibration.json
