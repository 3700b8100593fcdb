##@ Serve (FastChat: controller, workers, OpenAI API, web UI; serve/README.md)

# make serve [MODEL=dir] [ADAPTER=dir] [MODEL_NAME=name] [WORKERS=n] [DEVICE=cpu|cuda] [WORKER_ARGS="--num-gpus 2"]
#            [HOST=addr API_KEYS=k1,k2 WEB_AUTH=file] [API_PORT=p] [WEB_PORT=p] [CONTROLLER_PORT=p] [WORKER_PORT=p]
# HOST counts only when given on the command line (some shells export HOST as the machine's name).
SERVE_HOST = $(if $(filter command line,$(origin HOST)),--host $(HOST))
SERVE_ARGS = --model $(or $(MODEL),$(TINY_MODEL)) $(if $(ADAPTER),--adapter $(ADAPTER)) \
  $(if $(MODEL_NAME),--model-name $(MODEL_NAME)) $(if $(WORKERS),--workers $(WORKERS)) \
  $(if $(DEVICE),--device $(DEVICE)) $(SERVE_HOST) $(if $(WEB_AUTH),--web-auth-file $(WEB_AUTH)) \
  $(if $(API_PORT),--api-port $(API_PORT)) $(if $(WEB_PORT),--web-port $(WEB_PORT)) \
  $(if $(CONTROLLER_PORT),--controller-port $(CONTROLLER_PORT)) $(if $(WORKER_PORT),--worker-port $(WORKER_PORT)) \
  $(if $(WORKER_ARGS),--worker-args "$(WORKER_ARGS)")
# Keys travel in the environment, never on a command line that `ps` shows.
SERVE_KEYS = $(if $(API_KEYS),BIMEDIX_API_KEYS="$(API_KEYS)")

.PHONY: serve serve-check test-serve bench-serve bench-serve-recovery
serve: env-serve $(if $(MODEL),,tiny-model) ## Serve MODEL (default the tiny model; ADAPTER= base+LoRA): OpenAI API + web UI on 127.0.0.1
	@$(SERVE_KEYS) $(SERVE_PY) -m serve up $(SERVE_ARGS)

serve-check: env-serve $(if $(MODEL),,tiny-model) ## Check what `make serve` would refuse, and FastChat's template against MODEL's tokenizer
	@$(SERVE_KEYS) $(SERVE_PY) -m serve check $(SERVE_ARGS)

test-serve: env-serve tiny-model ## The serving tests only (serving environment, offline, a few minutes)
	$(TEST_ENV) $(SERVE_PY) -m pytest tests/serve -q

bench-serve: env-serve tiny-model ## Latency of a reply through the stack vs a direct generate, and 16-client throughput
	@$(TEST_ENV) $(SERVE_PY) -m benchmarks.serve_speed $(if $(MODEL),--model $(MODEL))

bench-serve-recovery: env-serve tiny-model ## kill -9 of the worker under 32 clients: seconds until the stack answers again
	@$(TEST_ENV) $(SERVE_PY) -m benchmarks.serve_recovery $(if $(MODEL),--model $(MODEL))
