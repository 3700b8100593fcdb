"""Each fix in serve/compat.py: FastChat's unfixed code path fails, then the fixed one works.

Each case runs in a fresh interpreter (the fixes patch FastChat's modules for the whole process):
first FastChat's own function, kept aside, on the failing input; then the same call once the fix
is applied.
"""

from __future__ import annotations

import json


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


CONTEXT_LENGTH = """
import json
from transformers import AutoConfig, MixtralConfig
import fastchat.utils
from bimedix.paths import TINY_MODEL_DIR
config = AutoConfig.from_pretrained(TINY_MODEL_DIR)  # transformers 5: rope_parameters, no 'factor'
unfixed = fastchat.utils.get_context_length
try:
    before = unfixed(config)
except KeyError as err:
    before = f"KeyError {err}"
from serve import compat
compat.apply("worker")
linear = MixtralConfig(max_position_embeddings=4096, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6})
after = [fastchat.utils.get_context_length(config), fastchat.utils.get_context_length(linear)]
print(json.dumps({"before": before, "after": after}))
"""


def test_context_length(tiny_model_dir, run_python):
    result = run_python(CONTEXT_LENGTH)
    assert result.returncode == 0, result.stderr
    outcome = last_json(result.stdout)
    assert outcome["before"] == "KeyError 'factor'"  # the worker dies at load without the fix
    assert outcome["after"] == [4096, 8192]  # plain RoPE: max positions; linear x2: twice


PYDANTIC_JSON = """
import json
from fastchat.protocol.openai_api_protocol import (
    ChatCompletionResponseStreamChoice, ChatCompletionStreamResponse, DeltaMessage)
chunk = ChatCompletionStreamResponse(
    model="m", choices=[ChatCompletionResponseStreamChoice(index=0, delta=DeltaMessage(content="نعم، ٢٠ ملغ"))])
try:  # what fastchat.serve.openai_api_server's stream generators call for every chunk
    before = chunk.json(exclude_unset=True, ensure_ascii=False)
except TypeError as err:
    before = f"TypeError {err}"
from serve import compat
compat.apply("api")
print(json.dumps({"before": before, "after": chunk.json(exclude_unset=True, ensure_ascii=False)}, ensure_ascii=False))
"""


def test_pydantic_json(run_python):
    result = run_python(PYDANTIC_JSON)
    assert result.returncode == 0, result.stderr
    outcome = last_json(result.stdout)
    assert outcome["before"].startswith("TypeError") and "dumps_kwargs" in outcome["before"]
    after = json.loads(outcome["after"])
    assert after["choices"][0]["delta"] == {"content": "نعم، ٢٠ ملغ"}  # unset fields left out, as pydantic 1 did
    assert "created" not in after
    assert "نعم" in outcome["after"]  # ensure_ascii=False honoured: Arabic not \\u-escaped


GC_FREEZE = """
import gc, json
from fastchat.model import model_adapter
from bimedix.paths import TINY_MODEL_DIR
# How many objects the gc.collect() that ends every reply walks, after the worker loads its model.
model_adapter.load_model(str(TINY_MODEL_DIR), device="cpu")
before = {"walked": len(gc.get_objects()), "frozen": gc.get_freeze_count()}
from serve import compat
compat.apply("worker")
model_adapter.load_model(str(TINY_MODEL_DIR), device="cpu")
after = {"walked": len(gc.get_objects()), "frozen": gc.get_freeze_count()}
print(json.dumps({"before": before, "after": after}))
"""


def test_gc_freeze_takes_the_loaded_objects_out_of_every_collection(tiny_model_dir, run_python):
    result = run_python(GC_FREEZE)
    assert result.returncode == 0, result.stderr
    outcome = last_json(result.stdout)
    before, after = outcome["before"], outcome["after"]
    # Python 3.12 starts with a few hundred objects frozen already (its own startup's); ours come on top.
    assert before["frozen"] < 1_000 and before["walked"] > 100_000, before  # torch, transformers, the model
    assert after["frozen"] - before["frozen"] > 100_000 and after["walked"] < 20_000, after


def test_a_fix_is_left_out_only_by_its_exact_name(run_python):
    code = "import os\nos.environ['BIMEDIX_SERVE_COMPAT_SKIP'] = 'gc_frezee'\nfrom serve import compat\ncompat.apply('worker')"
    result = run_python(code)
    assert result.returncode != 0 and "unknown fix(es) ['gc_frezee']" in result.stderr
