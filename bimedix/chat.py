"""The project's one chat template and system message, and a renderer that matches Hugging Face's.

`render` uses the same sandboxed Jinja setup as `tokenizer.apply_chat_template`, so code that
has no tokenizer at hand (the FastChat template test, data checks) renders identical text.
"""

from __future__ import annotations

from functools import lru_cache

from bimedix.paths import CHAT_TEMPLATE, SYSTEM_MESSAGE

BOS = "<s>"
EOS = "</s>"


@lru_cache(maxsize=1)
def chat_template() -> str:
    return CHAT_TEMPLATE.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def system_message() -> str:
    """The bilingual research-only system prompt (English line, then Arabic line)."""
    return SYSTEM_MESSAGE.read_text(encoding="utf-8").strip()


class ChatTemplateError(ValueError):
    """The messages do not fit the template (raised from the template's raise_exception)."""


def render(
    messages: list[dict[str, str]],
    *,
    bos_token: str = BOS,
    eos_token: str = EOS,
    add_generation_prompt: bool = False,
) -> str:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ChatTemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(chat_template()).render(
        messages=messages,
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
    )
