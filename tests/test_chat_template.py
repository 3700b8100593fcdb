"""The one chat template renders the Mixtral-Instruct layout, and HF renders it the same way."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from bimedix.chat import ChatTemplateError, render, system_message

CONVERSATION = [
    {"role": "user", "content": "What is the first-line drug for type 2 diabetes?"},
    {"role": "assistant", "content": "Metformin."},
    {"role": "user", "content": "ما هي الجرعة المعتادة؟"},
]


def test_renders_turns_in_mixtral_instruct_layout():
    assert render(CONVERSATION) == (
        "<s>[INST] What is the first-line drug for type 2 diabetes? [/INST] Metformin.</s>"
        "[INST] ما هي الجرعة المعتادة؟ [/INST]"
    )


def test_folds_the_system_message_into_the_first_instruction():
    messages = [{"role": "system", "content": "Be brief."}, *CONVERSATION[:2]]
    assert render(messages) == (
        "<s>[INST] Be brief.\n\nWhat is the first-line drug for type 2 diabetes? [/INST] Metformin.</s>"
    )


def test_generation_prompt_is_the_trailing_inst_close():
    assert render(CONVERSATION, add_generation_prompt=True) == render(CONVERSATION)
    assert render(CONVERSATION).endswith(" [/INST]")


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "assistant", "content": "hi"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}],
    ],
)
def test_rejects_conversations_that_do_not_alternate(messages):
    with pytest.raises(ChatTemplateError, match="alternate"):
        render(messages)


def test_system_message_is_bilingual_and_research_only():
    english, arabic = system_message().splitlines()
    assert "research" in english and "not for diagnosis" in english
    assert "للبحث" in arabic and "سريري" in arabic


def test_hugging_face_renders_identically(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "system", "content": system_message()}, *CONVERSATION]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == render(messages)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    assert ids == tokenizer(render(messages), add_special_tokens=False).input_ids
    assert ids.count(tokenizer.bos_token_id) == 1
