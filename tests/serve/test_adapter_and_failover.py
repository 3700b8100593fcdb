"""Base model + LoRA adapter served for real, and a worker killed in the middle of a reply.

One stack of its own (the failover test kills its worker): the tiny model with a LoRA adapter on
attention, every expert and the router, as the BiMediX recipes train it. Its supervisor is off, so
that the dead worker stays dead while the test looks (tests/serve/test_supervision.py has the restarts).
"""

from __future__ import annotations

import threading

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from serve.conversation import reference_messages
from serve.stack import ServeStack, http

MESSAGES = [{"role": "user", "content": "هل يُستخدم Metformin إذا كان eGFR أقل من ٣٠؟"}]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"],
        init_lora_weights=False,  # random B too: an adapter that changes the output
    )
    out = tmp_path_factory.mktemp("adapters") / "bimedix-lora-test"
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapter_stack(tiny_model_dir, adapter_dir, new_log_dir):
    with ServeStack(
        tiny_model_dir, adapter=adapter_dir, log_dir=new_log_dir("adapter"), device="cpu", supervise=False
    ) as running:
        yield running


@pytest.fixture(scope="module")
def adapter_client(adapter_stack):
    return openai.OpenAI(base_url=adapter_stack.api_base, api_key="none", max_retries=0, timeout=120)


def greedy(model, tokenizer, tokens: int = 12) -> str:
    ids = tokenizer.apply_chat_template(reference_messages(MESSAGES), tokenize=True, return_dict=False)
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=tokens, do_sample=False, pad_token_id=3)
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()


def test_base_plus_adapter_answers_as_peft_does(adapter_stack, adapter_client, tiny_model_dir, adapter_dir):
    from peft import PeftModel

    assert adapter_stack.model_name == "bimedix-lora-test"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    base_reply = greedy(base, tokenizer)
    peft_reply = greedy(PeftModel.from_pretrained(base, adapter_dir).eval(), tokenizer)
    assert peft_reply != base_reply  # the adapter changes the answer ...
    served = adapter_client.chat.completions.create(
        model=adapter_stack.model_name, messages=MESSAGES, max_tokens=12, temperature=0
    )
    assert served.choices[0].message.content.strip() == peft_reply  # ... and the worker serves it merged


def test_survives_a_worker_killed_mid_reply(adapter_stack, adapter_client):
    name = adapter_stack.model_name
    stream = adapter_client.chat.completions.create(
        model=name, messages=MESSAGES, max_tokens=2000, temperature=0, stream=True
    )
    received, killed = 0, threading.Event()
    with pytest.raises(openai.APIError, match="stopped answering") as cut:
        for _ in stream:
            received += 1
            if received == 3:
                adapter_stack.kill_worker(0)  # SIGKILL, as a crash
                killed.set()
    assert killed.is_set(), "the reply ended before the worker could be killed"
    print(f"mid-reply error: {cut.value}")
    assert set(cut.value.body) == {"message", "type", "code"}  # OpenAI's error shape, in the stream too
    # The controller dropped the dead worker ...
    internal = adapter_stack.internal_headers
    assert http("POST", adapter_stack.controller_url + "/list_models", headers=internal)[1]["models"] == []
    # ... so the next request gets a clear 503, not a hang or a bare 500.
    with pytest.raises(openai.InternalServerError, match="no model worker is serving 'bimedix-lora-test'") as down:
        adapter_client.chat.completions.create(model=name, messages=MESSAGES, max_tokens=4)
    assert down.value.status_code == 503
    # A worker comes back: the API answers again.
    adapter_stack.add_worker()
    reply = adapter_client.chat.completions.create(model=name, messages=MESSAGES, max_tokens=4)
    assert reply.choices[0].message.content
