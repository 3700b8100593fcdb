##@ Models (bimedix/: built offline, byte for byte reproducibly)

# SMALL_MODEL   the small pretrained MoE: SmolLM2-135M-Instruct upcycled into a 4-expert top-2 Mixtral
# SMALL_TEACHER the dense SmolLM2-135M-Instruct in its own ChatML layout (the demo's teacher)
SMALL_MODEL ?= models/small-bimedix-moe
SMALL_TEACHER ?= models/smollm2-135m-instruct

.PHONY: small-model
small-model: env ## Build the small pretrained MoE (SmolLM2-135M upcycled, 4 experts top-2) and its dense teacher in models/, offline
	@$(TEST_ENV) $(PY) -m bimedix.small_model --out $(SMALL_MODEL) --teacher-out $(SMALL_TEACHER)
