"""lm-eval model "bimedix-fastchat": log-likelihoods and generations through FastChat's OpenAI API.

lm-eval's own local-completions breaks on FastChat 0.2.36's /v1/completions (../shared/NOTES.md):
  - FastChat tokenizes the prompt text itself, with the tokenizer's default special tokens, so it
    puts a <s> in front that the client never sent, and the echoed token_logprobs are one longer
    than lm-eval expects (every continuation is read one token off);
  - its top_logprobs are empty dicts, so lm-eval's greedy check (max over them) raises;
  - max_tokens=0 is refused (FastChat's loop needs one new token), so the reply carries one extra
    generated token at the end.
This class tokenizes exactly as lm-eval's hf backend does (the tokenizer's own <s>, none doubled
when a chat-templated prompt already starts with it), sends the text without its leading <s>
(FastChat adds it back), asks for echo + logprobs + max_tokens=1, and reads the continuation's
log-probabilities from the end of the echo (before the generated token), after checking that
FastChat's tokens there are the ones lm-eval scored. Per-choice log-likelihoods then equal the hf
backend's on the same model (tests/eval_tasks/test_eval_api.py).

`is_greedy` is always False: FastChat returns no top log-probabilities. The bimedix_* tasks score
multiple choice by comparing the choices' log-likelihoods and do not use it.
"""

from __future__ import annotations

from operator import itemgetter

from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalCompletionsAPI

MODEL_NAME = "bimedix-fastchat"


class FastChatReplyError(RuntimeError):
    """A /v1/completions reply that does not line up with the tokens lm-eval scored."""


@register_model(MODEL_NAME)
class FastChatCompletionsLM(LocalCompletionsAPI):
    def __init__(self, base_url: str | None = None, tokenizer: str | None = None, **kwargs) -> None:
        kwargs.update(tokenizer_backend="huggingface", tokenized_requests=False)
        kwargs.setdefault("add_bos_token", True)
        kwargs.setdefault("max_length", 4096)
        super().__init__(base_url=base_url, tokenizer=tokenizer, **kwargs)
        self._bos = self.tokenizer.bos_token

    # -- tokenization: as lm-eval's HFLM --------------------------------------------------------

    def tok_encode(self, string, left_truncate_len=None, add_special_tokens=None, truncation=False, **kwargs):
        """The tokenizer's default special tokens (a leading <s>), unless the text already starts with <s>.
        (TemplateAPI.tok_encode cannot say "no <s>" once add_bos_token is set, hence the tokenizer call here.)"""
        if add_special_tokens is None:
            add_special_tokens = bool(self.add_bos_token)
            if isinstance(string, str) and self._bos and string.startswith(self._bos):
                add_special_tokens = False
        encoding = self.tokenizer(
            string, add_special_tokens=add_special_tokens, truncation=truncation, return_attention_mask=False
        ).input_ids
        if left_truncate_len:
            encoding = (
                encoding[-left_truncate_len:] if isinstance(string, str) else [e[-left_truncate_len:] for e in encoding]
            )
        return encoding

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Rendered here with the model's own tokenizer, exactly as lm-eval's hf backend renders it
        (lm-eval would otherwise send chat messages, which /v1/completions cannot score)."""
        return self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    def _prompt_text(self, item) -> str:
        """Token ids or text -> the text FastChat should receive: without the <s> it adds itself."""
        if isinstance(item, list):
            if item and item[0] == self.tokenizer.bos_token_id:
                item = item[1:]
            return self.tokenizer.decode(item)
        if self._bos and item.startswith(self._bos):
            return item[len(self._bos) :]
        return item

    def create_message(self, messages, generate=False):
        if messages and isinstance(messages[0], (list, str)):
            texts = [self._prompt_text(m) for m in messages]
            return texts[0] if self._batch_size <= 1 else texts
        return super().create_message(messages, generate)

    # -- requests and replies -------------------------------------------------------------------

    def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs) -> dict:
        if generate:
            return super()._create_payload(messages, generate=True, gen_kwargs=gen_kwargs, seed=seed, eos=eos, **kwargs)
        return {"model": self.model, "prompt": messages, "temperature": 0, "max_tokens": 1, "logprobs": 1, "echo": True}

    def parse_logprobs(self, outputs, tokens=None, ctxlens=None, **kwargs) -> list[tuple[float, bool]]:
        """Sum the continuation's log-probabilities, read from the end of FastChat's echo."""
        res = []
        outputs = outputs if isinstance(outputs, list) else [outputs]
        choices = [c for out in outputs for c in sorted(out["choices"], key=itemgetter("index"))]
        if len(choices) != len(tokens):
            raise FastChatReplyError(f"FastChat answered {len(choices)} prompts, {len(tokens)} were sent")
        bos = self.tokenizer.bos_token_id
        for choice, sent, ctxlen in zip(choices, tokens, ctxlens, strict=True):
            logprobs = choice.get("logprobs") or {}
            scores = logprobs.get("token_logprobs") or []
            echoed = logprobs.get("tokens") or []
            # FastChat echoes [<s>] + the prompt's tokens + 1 generated token
            expected_ids = sent if sent and sent[0] == bos else [bos, *sent]
            expected = [self.tokenizer.decode([t]) for t in expected_ids]
            if len(scores) != len(expected) + 1 or len(echoed) != len(scores):
                raise FastChatReplyError(
                    f"FastChat echoed {len(scores)} token log-probabilities, expected {len(expected) + 1} "
                    f"(<s>, {len(sent) - (sent[0] == bos if sent else 0)} prompt tokens, 1 generated): "
                    "is echo supported, max_tokens=1 honoured, the prompt not truncated?"
                )
            if echoed[:-1] != expected:
                first = next(i for i, (a, b) in enumerate(zip(echoed, expected, strict=False)) if a != b)
                raise FastChatReplyError(
                    f"FastChat tokenized the prompt differently from lm-eval at token {first}: "
                    f"{echoed[first : first + 3]!r} instead of {expected[first : first + 3]!r}"
                )
            n = len(sent) - ctxlen  # the continuation's tokens end the prompt
            tail = scores[-(n + 1) : -1]
            if n <= 0 or any(score is None for score in tail):
                raise FastChatReplyError(f"no log-probabilities for the {n} continuation tokens")
            res.append((float(sum(tail)), False))
        return res
