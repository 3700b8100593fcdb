##@ Evaluation (eval_tasks/: nine medical benchmarks in English and Arabic, the paper's tables)

# MODEL (default: the tiny model), ADAPTER, BACKEND=hf|vllm|api, EVAL_DATA=sample|hub|DIR, EVAL_DATA_ROOT,
# TASKS (default bimedix_bilingual), RUN (results/<RUN>/), RESULTS_DIR (default results), LIMIT (questions
# per task), API_URL, CHAT=1 (chat template), BATCH_SIZE, MODEL_ARGS (k=v,... passed to lm-eval's model),
# MAX_REJECTED / MAX_REPEATED (the audit's limits, shares; default eval_tasks/settings.yaml).
.PHONY: eval eval-tables eval-check-data bench-eval
eval: $(if $(MODEL),env,tiny-model) ## Score MODEL (+ADAPTER) on the 18 tasks (BACKEND=hf|vllm|api, EVAL_DATA=sample|hub|DIR); results and tables in results/<run>/
	$(PY) -m eval_tasks run --model "$(or $(MODEL),$(TINY_MODEL))" --adapter "$(ADAPTER)" --backend "$(BACKEND)" --data "$(EVAL_DATA)" --data-root "$(EVAL_DATA_ROOT)" --tasks "$(TASKS)" --run-name "$(RUN)" --results-dir "$(RESULTS_DIR)" --limit "$(LIMIT)" --api-url "$(API_URL)" --batch-size "$(BATCH_SIZE)" --model-args "$(MODEL_ARGS)" --max-rejected "$(MAX_REJECTED)" --max-repeated "$(MAX_REPEATED)" $(if $(CHAT),--chat-template)

eval-tables: env ## The three paper tables (Markdown, CSV, PNG) from RESULTS="results/a results/b" (default: every run in results/)
	$(PY) -m eval_tasks tables $(RESULTS)

eval-check-data: env ## Load and audit every task from EVAL_DATA (sample|hub|DIR): rows read, selected, scored, rejected
	$(PY) -m eval_tasks check-data --data "$(EVAL_DATA)" --data-root "$(EVAL_DATA_ROOT)" --max-rejected "$(MAX_REJECTED)" --max-repeated "$(MAX_REPEATED)"

bench-eval: tiny-model ## Time the 18-task evaluation of the tiny model per backend (benchmarks/bench_eval.py)
	$(PY) benchmarks/bench_eval.py
