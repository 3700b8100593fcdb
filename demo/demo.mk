##@ Demo (the whole recipe at toy scale, offline, on a CPU: bimedix/demo.py, settings in bimedix/demo.yaml)

# Each step reuses its finished work when its inputs are unchanged (stamps in logs/demo/);
# DEMO_FORCE=1 runs it again (`make demo DEMO_FORCE=1`: every step). A step runs what it needs first.
DEMO_FORCE ?=
DEMO = @$(TEST_ENV) $(PY) -m bimedix.demo --tiny-model $(TINY_MODEL) $(if $(filter-out 0 no false,$(DEMO_FORCE)),--force)

.PHONY: demo demo-setup demo-teacher demo-data demo-train demo-eval demo-serve demo-stop demo-status demo-clean bench-demo
demo: env env-serve ## The whole recipe at toy scale: setup, teacher, data, train, eval, serve (stops the teacher at the end)
	$(DEMO) all

demo-setup: env env-serve ## Demo step 1: both environments and the tiny MoE model
	$(DEMO) setup

demo-teacher: env env-serve ## Demo step 2: FastChat serving the tiny model as the LLM stages' teacher, in the background
	$(DEMO) teacher

demo-data: env env-serve ## Demo step 3: translation and chat synthesis through the teacher, bilingual mix 1:2 in data/demo/
	$(DEMO) data

demo-train: env env-serve ## Demo step 4: the tiny bilingual recipe through Axolotl, merged with the expert LoRA, in outputs/demo/
	$(DEMO) train

demo-eval: env env-serve ## Demo step 5: base and fine-tuned on the 18 tasks, the paper's tables and chart in results/demo/
	$(DEMO) eval

demo-serve: env env-serve ## Demo step 6: serve the fine-tuned model, one English and one Arabic question through the OpenAI API
	$(DEMO) serve

demo-stop: env ## Stop the demo's teacher (by its PID, from logs/demo/teacher.json)
	$(DEMO) stop

demo-status: env ## Which demo steps are up to date, and whether the teacher runs
	$(DEMO) status

demo-clean: env ## Stop the teacher and remove the demo's outputs (data/demo, outputs/demo, results/demo, logs/demo)
	$(DEMO) clean

bench-demo: env env-serve ## Time the demo cold (removes the demo's outputs and the tiny model first) and warm
	@$(TEST_ENV) $(PY) benchmarks/bench_demo.py --tiny-model $(TINY_MODEL)
