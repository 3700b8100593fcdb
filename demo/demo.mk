##@ Demo (the whole recipe at small scale with a real pretrained MoE, offline, on a CPU: demo/runner.py, settings in demo/demo.yaml)

# make builds what every step needs (both environments, `make small-model`); each step then reuses its
# finished work when its inputs are unchanged (stamps in logs/demo/). DEMO_FORCE=1 runs it again
# (`make demo DEMO_FORCE=1`: every step). A step runs the steps it needs first.
DEMO_FORCE ?=
DEMO = @$(TEST_ENV) $(PY) -m demo --model $(SMALL_MODEL) --teacher $(SMALL_TEACHER) $(if $(filter-out 0 no false,$(DEMO_FORCE)),--force)

.PHONY: demo demo-teacher demo-data demo-train demo-eval demo-serve demo-stop demo-status demo-clean bench-demo
demo: env env-serve small-model ## The whole recipe with the small pretrained MoE: teacher, data, train, eval, serve (the teacher stops after the data step)
	$(DEMO) all

demo-teacher: env env-serve small-model ## Demo step 1: FastChat serving the dense SmolLM2 as the LLM stages' teacher, in the background
	$(DEMO) teacher

demo-data: env env-serve small-model ## Demo step 2: chat synthesis and translation through the teacher, bilingual mix 1:2 in data/demo/
	$(DEMO) data

demo-train: env env-serve small-model ## Demo step 3: the small recipe through Axolotl, merged with the expert LoRA, in outputs/demo/
	$(DEMO) train

demo-eval: env env-serve small-model ## Demo step 4: base and fine-tuned MoE on the English benchmarks' sample, tables in results/demo/
	$(DEMO) eval

demo-serve: env env-serve small-model ## Demo step 5: serve the fine-tuned MoE, one English and one Arabic question through the OpenAI API
	$(DEMO) serve

demo-stop: env ## Stop the demo's teacher (by its PID, from logs/demo/teacher.json)
	$(DEMO) stop

demo-status: env ## Which demo steps are up to date, and whether the teacher runs
	$(DEMO) status

demo-clean: env ## Stop the teacher and remove the demo's outputs (data/demo, outputs/demo, results/demo, logs/demo)
	$(DEMO) clean

bench-demo: env env-serve ## Time the demo cold (removes the demo's outputs and the small models first) and warm
	@$(TEST_ENV) $(PY) benchmarks/bench_demo.py --model $(SMALL_MODEL) --teacher $(SMALL_TEACHER)
