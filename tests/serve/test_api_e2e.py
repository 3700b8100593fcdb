"""The OpenAI API end to end on loopback: openai client -> API server -> controller -> two workers -> tiny model."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from serve.conversation import reference_messages
from serve.stack import http

ENGLISH = [{"role": "user", "content": "What is the first-line drug for type 2 diabetes?"}]
ARABIC = [
    {"role": "system", "content": "أَجِبْ بِإِيجَاز."},
    {"role": "user", "content": "مَا هِيَ الجُرْعَةُ المُعْتَادَةُ لِلـبـاراسـيـتـامـول لِطِفْلٍ وَزْنُهُ ٢٠ كغ؟"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def test_lists_the_model(client, stack):
    assert [m.id for m in client.models.list()] == [stack.model_name]


def test_rejects_a_missing_or_wrong_key(stack, api_key):
    wrong = openai.OpenAI(base_url=stack.api_base, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        wrong.models.list()
    status, body = http("GET", stack.api_base + "/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    # FastChat leaves its own /api/v1/chat/completions without a key check; here every path needs one.
    request = {"model": stack.model_name, "messages": ENGLISH, "max_tokens": 2}
    assert http("POST", stack.parts["api"].url + "/api/v1/chat/completions", request)[0] == 401
    good = {"Authorization": f"Bearer {api_key}"}
    assert http("POST", stack.parts["api"].url + "/api/v1/chat/completions", request, headers=good)[0] == 200


@pytest.mark.parametrize("messages", [ENGLISH, ARABIC], ids=["english", "arabic"])
def test_chat_reply_is_the_direct_greedy_generate(client, stack, tokenizer, model, messages):
    reply = client.chat.completions.create(model=stack.model_name, messages=messages, max_tokens=12, temperature=0)
    # The prompt the worker fed the model is the project's chat template, with the default system message.
    ids = tokenizer.apply_chat_template(reference_messages(messages), tokenize=True, return_dict=False)
    assert reply.usage.prompt_tokens == len(ids)
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=3)
    direct = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
    assert reply.choices[0].message.content.strip() == direct.strip()
    assert reply.choices[0].message.content.strip()


def test_streams_the_same_reply(client, stack):
    kwargs = {"model": stack.model_name, "messages": ARABIC, "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 3  # streamed in pieces, not one block
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed.strip() == whole.replace("\ufffd", "").strip()  # the stream drops half characters


def test_completion_with_echo_and_logprobs_is_what_the_readme_says(client, stack, tokenizer, model):
    """serve/README.md: the echoed <s>, the empty top_logprobs, and how a client scores a continuation."""
    context, continuation = "Question: fever after surgery? Answer:", " infection"
    reply = client.completions.create(
        model=stack.model_name, prompt=context + continuation, max_tokens=1, temperature=0, echo=True, logprobs=1
    )
    choice, full = reply.choices[0], tokenizer(context + continuation).input_ids  # adds <s>, as the worker does
    lp = choice.logprobs
    assert lp.tokens[0] == "<s>" and lp.token_logprobs[0] is None  # the <s> the client never sent
    assert len(lp.tokens) == len(full) + 1  # every prompt token, then the one generated token
    assert all(top == {} for top in lp.top_logprobs)  # no alternatives, ever
    assert choice.text.startswith(context + continuation)  # the echoed text has no <s> ...
    assert lp.text_offset[1] == len("<s>")  # ... but the offsets count it
    assert reply.usage.prompt_tokens == len(full) and reply.usage.completion_tokens == 0  # one token short
    # The README's recipe: tokens [len(context ids), len(full ids)) are the continuation's.
    start = len(tokenizer(context).input_ids)
    served = sum(lp.token_logprobs[start : len(full)])
    with torch.inference_mode():
        logits = model(torch.tensor([full])).logits.log_softmax(-1)[0]
    direct = sum(logits[i - 1, full[i]].item() for i in range(start, len(full)))
    assert math.isclose(served, direct, abs_tol=1e-3)


def test_bounds_requests(client, stack, api_key):
    base = {"model": stack.model_name, "messages": ENGLISH}
    with pytest.raises(openai.BadRequestError, match="over this server's limit of 2048"):
        client.chat.completions.create(max_tokens=4096, **base)
    with pytest.raises(openai.BadRequestError, match="max_n"):
        client.chat.completions.create(max_tokens=2, n=9, **base)
    with pytest.raises(openai.BadRequestError, match="token-id prompts are not supported"):
        client.completions.create(model=stack.model_name, prompt=[1, 2, 3], max_tokens=2)
    two_users = [ENGLISH[0], {"role": "user", "content": "And in Arabic?"}]
    with pytest.raises(openai.BadRequestError, match=r"messages\[1\]: expected a assistant message"):
        client.chat.completions.create(model=stack.model_name, messages=two_users, max_tokens=2)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4", messages=ENGLISH, max_tokens=2)
    huge = json.dumps({**base, "messages": [{"role": "user", "content": "x" * 1_100_000}]}).encode()
    request = urllib.request.Request(stack.api_base + "/chat/completions", data=huge, method="POST")
    request.add_header("Authorization", f"Bearer {api_key}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413


def test_unset_max_tokens_gets_the_default(client, stack):
    reply = client.chat.completions.create(model=stack.model_name, messages=ENGLISH, temperature=0)
    assert reply.usage.completion_tokens <= 512
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == 511  # FastChat reports one short at length


def test_two_workers_on_one_controller_share_the_requests(client, stack):
    assert len(stack.workers) == 2
    status, body = http("POST", stack.controller_url + "/worker_get_status", headers=stack.internal_headers)  # sums
    assert status == 200 and body["speed"] == 2 and body["model_names"] == [stack.model_name]
    for _ in range(6):
        client.chat.completions.create(model=stack.model_name, messages=ENGLISH, max_tokens=2)
    for worker in stack.workers:
        assert "POST /worker_generate " in worker.log.read_text(), f"{worker.role} served nothing ({worker.log})"
