"""FastChat's BiMediX template feeds the model exactly the token ids of templates/chat_template.jinja.

The conversations (serve/samples/conversations.json) cover English and Arabic, with the default,
an own and an empty system message, several turns, diacritics, tatweel, Arabic-Indic digits,
mixed script and RTL marks. Both prompt builders are FastChat's own code: the OpenAI API server's
get_gen_params with the template as the worker sends it, and the web UI's conversation state.
"""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from bimedix.chat import render, system_message
from serve import conversation
from serve.config import load_settings
from serve.stack import http

NAME = "tiny-bimedix-moe"


@pytest.fixture(scope="module")
def settings():
    return load_settings()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir, settings):
    conversation.register(settings, model_names=[str(tiny_model_dir), NAME])
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_samples_cover_the_arabic_edge_cases():
    text = "".join(m["content"] for s in conversation.load_samples() for m in s["messages"])
    for needle, what in [("ـ", "tatweel"), ("\u064e", "fatha"), ("٢٠", "Arabic-Indic digits"), ("\u200f", "RLM")]:
        assert needle in text, what
    roles = {tuple(m["role"] for m in s["messages"]) for s in conversation.load_samples()}
    assert ("user",) in roles and any(r[0] == "system" for r in roles) and any(len(r) >= 3 for r in roles)


def test_fastchat_feeds_the_model_the_chat_templates_token_ids(tokenizer, settings):
    assert conversation.template_mismatches(tokenizer, settings, model_name=NAME) == []


@pytest.mark.parametrize("sample", conversation.load_samples(), ids=lambda s: s["name"])
def test_prompt_text_is_the_jinja_text_without_bos(tokenizer, settings, sample):
    expected = render(conversation.reference_messages(sample["messages"]))
    assert expected.startswith("<s>")
    assert conversation.api_prompt(sample["messages"], settings, NAME) == expected[len("<s>") :]
    assert conversation.webui_prompt(sample["messages"], NAME) == expected[len("<s>") :]


def test_no_system_message_means_the_bilingual_research_only_one(settings):
    prompt = conversation.api_prompt([{"role": "user", "content": "Hello"}], settings, NAME)
    assert prompt == f"[INST] {system_message()}\n\nHello [/INST]"


def test_a_different_template_is_caught(tokenizer, settings):
    changed = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    changed.chat_template = tokenizer.chat_template.replace("'\\n\\n'", "'\\n'")  # one newline after the system
    assert changed.chat_template != tokenizer.chat_template
    problems = conversation.template_mismatches(changed, settings, model_name=NAME)
    assert {path for _, path, _ in problems} == {"api", "webui"}
    assert len(problems) == 2 * sum(
        1 for s in conversation.load_samples() if conversation.reference_messages(s["messages"])[0]["content"]
    )


def test_our_adapter_goes_before_fastchats_substring_matches(settings):
    from fastchat.model.model_adapter import get_conversation_template, get_model_adapter

    base = "/models/Mixtral-8x7B-Instruct-v0.1"
    assert type(get_model_adapter(base)).__name__ == "MistralAdapter"  # FastChat's claim on any "mixtral"
    conversation.register(settings, model_names=[base], adapter_path="/adapters/bimedix-lora")
    assert type(get_model_adapter(base)).__name__ == "BiMediXAdapter"
    assert get_conversation_template(base).name == settings.conversation.name


def test_the_running_worker_hands_out_this_template(stack):
    status, body = http(
        "POST",
        stack.workers[0].url + "/worker_get_conv_template",
        {"model": stack.model_name},
        headers=stack.internal_headers,
    )
    conv = body["conv"]
    assert status == 200 and conv["name"] == "bimedix"
    assert conv["system_message"] == system_message() and conv["system_template"] == "[INST] {system_message}\n\n"
