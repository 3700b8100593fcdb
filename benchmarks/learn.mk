##@ Benchmarks (benchmarks/: measurements reported in the READMEs)

# REALDATA: the real benchmark copies (MedMCQA's validation split is split by question hash into
# scored and training halves); absent, the embedded samples are used and the report says so.
REALDATA ?= ../shared/realdata

.PHONY: bench-learn
bench-learn: env small-model ## The learning proof: fine-tune the small MoE on medical MCQs, held-out loss, accuracy with 95% CI, expert load before/after
	@$(TEST_ENV) $(PY) benchmarks/bench_learn.py --model $(SMALL_MODEL) --realdata '$(REALDATA)'
