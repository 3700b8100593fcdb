"""The BiMediX conversation template and model adapter, registered through FastChat's public API.

Each FastChat process that builds prompts or loads the model calls `register(...)` before FastChat
runs: the worker (it loads the model and hands the template to the OpenAI API server) and the web
UI (it builds its prompts itself). Nothing in FastChat is edited.

The template is data (serve/settings.yaml, conversation); the system message is
templates/system_message.txt. The prompt FastChat renders, once the worker's tokenizer adds <s>,
is token for token what templates/chat_template.jinja renders (tests/serve/test_conversation.py).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from bimedix.chat import system_message
from serve.config import ConversationSettings, Settings, load_settings


def make_conversation(conv: ConversationSettings, system: str | None = None):
    """A fresh FastChat Conversation for the BiMediX template (system: templates/system_message.txt)."""
    from fastchat.conversation import Conversation, SeparatorStyle

    try:
        style = SeparatorStyle[conv.sep_style]
    except KeyError:
        raise ValueError(
            f"[conversation] sep_style {conv.sep_style!r} is not one of FastChat's built-in styles"
        ) from None
    return Conversation(
        name=conv.name,
        system_template=conv.system_template,
        system_message=system_message() if system is None else system,
        roles=tuple(conv.roles),
        messages=[],
        offset=0,
        sep_style=style,
        sep=conv.sep,
        sep2=conv.sep2,
    )


def _adapter_class(settings: Settings, names: set[str], adapter_path: str | None, merge: bool):
    from fastchat.conversation import get_conv_template
    from fastchat.model.model_adapter import BaseModelAdapter

    conv_name = settings.conversation.name

    class BiMediXAdapter(BaseModelAdapter):
        """Loads a BiMediX model (a merged folder, or a base plus a LoRA adapter) without remote code."""

        def match(self, model_path: str) -> bool:
            path = os.path.normpath(model_path)
            return path in names or os.path.basename(path) in names or "bimedix" in path.lower()

        def load_model(self, model_path: str, from_pretrained_kwargs: dict):
            from transformers import AutoModelForCausalLM, AutoTokenizer

            kwargs = dict(from_pretrained_kwargs)
            if "torch_dtype" in kwargs:  # FastChat's name; transformers 5 calls it dtype
                kwargs["dtype"] = kwargs.pop("torch_dtype")
            revision = kwargs.pop("revision", None)
            tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
            model = AutoModelForCausalLM.from_pretrained(model_path, revision=revision, **kwargs)
            if adapter_path:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter_path)
                if merge:
                    model = model.merge_and_unload()
            model.config.eos_token_id = tokenizer.eos_token_id
            model.config.pad_token_id = tokenizer.pad_token_id
            return model.eval(), tokenizer

        def get_default_conv_template(self, model_path: str):
            return get_conv_template(conv_name)

    return BiMediXAdapter


def register(
    settings: Settings | None = None,
    *,
    model_names: Iterable[str] = (),
    adapter_path: str | None = None,
    merge_adapter: bool = True,
) -> None:
    """Register the conv template and a model adapter that claims `model_names` (paths or names).

    FastChat picks the first adapter that matches a model's path, in registration order, and its
    own adapters match on substrings ("mixtral" claims any Mixtral path), so ours goes first.
    """
    from fastchat.conversation import conv_templates, register_conv_template
    from fastchat.model import model_adapter, model_registry

    settings = settings or load_settings()
    conv = settings.conversation
    if conv.name not in conv_templates:
        register_conv_template(make_conversation(conv))
    names = {os.path.normpath(n) for n in model_names} | {os.path.basename(os.path.normpath(n)) for n in model_names}
    model_adapter.register_model_adapter(_adapter_class(settings, names, adapter_path, merge_adapter))
    model_adapter.model_adapters.insert(0, model_adapter.model_adapters.pop())
    model_adapter.get_model_adapter.cache_clear()
    info = settings.model_info
    model_registry.register_model_info(sorted(names), info.simple_name, info.link, info.description)


SAMPLES = Path(__file__).resolve().parent / "samples" / "conversations.json"


def load_samples(path: Path = SAMPLES) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def reference_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages the Jinja template must see: FastChat adds the default system message when none is sent."""
    if messages and messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": system_message()}, *messages]


def worker_conv_payload(settings: Settings) -> dict:
    """What a worker's /worker_get_conv_template answers, built by FastChat's own worker code."""
    from fastapi.encoders import jsonable_encoder
    from fastchat.serve.base_model_worker import BaseModelWorker

    conv = BaseModelWorker.make_conv_template(None, settings.conversation.name)
    conv.sep_style = int(conv.sep_style)  # as BaseModelWorker.__init__ does
    return jsonable_encoder({"conv": conv})["conv"]


def api_prompt(messages: list[dict[str, str]], settings: Settings, model_name: str = "bimedix") -> str:
    """The prompt FastChat's OpenAI API server builds for a chat request (its own get_gen_params)."""
    import asyncio

    stdout, stderr = sys.stdout, sys.stderr
    import fastchat.serve.openai_api_server as api_server

    sys.stdout, sys.stderr = stdout, stderr  # its build_logger swaps them for loggers at import
    worker_addr = "http://worker.invalid"  # never contacted: the template is taken from the cache below
    api_server.conv_template_map[(worker_addr, model_name)] = worker_conv_payload(settings)
    params = asyncio.run(
        api_server.get_gen_params(
            model_name, worker_addr, messages, temperature=0.0, top_p=1.0, top_k=-1,
            presence_penalty=0.0, frequency_penalty=0.0, max_tokens=16, echo=False, stop=None,
        )
    )  # fmt: skip
    return params["prompt"]


def webui_prompt(messages: list[dict[str, str]], model_name: str) -> str:
    """The prompt FastChat's web UI builds (State -> get_conversation_template -> append -> get_prompt)."""
    from fastchat.model.model_adapter import get_conversation_template

    conv = get_conversation_template(model_name)
    for message in messages:
        if message["role"] == "system":
            conv.set_system_message(message["content"])
        else:
            conv.append_message(conv.roles[0 if message["role"] == "user" else 1], message["content"])
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


def template_mismatches(tokenizer, settings: Settings, samples: list[dict] | None = None, model_name: str = "bimedix"):
    """Samples whose FastChat prompt, tokenized as the worker does, differs from the tokenizer's chat template.

    The worker feeds the model `tokenizer(prompt).input_ids` (fastchat.serve.inference.generate_stream);
    the reference is `tokenizer.apply_chat_template(messages)`. Returns (sample name, path, problem) triples.
    """
    problems = []
    for sample in samples if samples is not None else load_samples():
        reference = reference_messages(sample["messages"])
        expected = tokenizer.apply_chat_template(reference, tokenize=True, return_dict=False)
        for path, prompt in (
            ("api", api_prompt(sample["messages"], settings, model_name)),
            ("webui", webui_prompt(sample["messages"], model_name)),
        ):
            fed = tokenizer(prompt).input_ids
            if fed != expected:
                pairs = enumerate(zip(fed, expected, strict=False))
                at = next((i for i, (a, b) in pairs if a != b), min(len(fed), len(expected)))
                ours, theirs = tokenizer.decode(fed[at : at + 8]), tokenizer.decode(expected[at : at + 8])
                problems.append((sample["name"], path, f"token {at}: FastChat {ours!r} vs chat template {theirs!r}"))
    return problems
