"""The api backend (eval_tasks/api_model.py): FastChat's replies read right, and equal to the hf backend.

The first tests feed the model class replies shaped exactly as FastChat 0.2.36's /v1/completions
returns them with echo (a <s> the client did not send, empty top_logprobs, one generated token at
the end). The last one scores through the project's FastChat stack serving the tiny model (started by
serve/stack.py), or through BIMEDIX_EVAL_API_URL when that points at one already running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bimedix.paths import ROOT
from eval_tasks.api_model import FastChatCompletionsLM, FastChatReplyError

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return FastChatCompletionsLM(
        base_url="http://127.0.0.1:9/v1/completions", model="tiny", tokenizer=str(tiny_model_dir)
    )


def fastchat_reply(lm, prompt_text: str, scores: dict[int, float], ids: list[int] | None = None) -> dict:
    """What FastChat returns for a prompt text: it tokenizes with <s>, echoes every token, adds one generated token."""
    ids = ids or lm.tokenizer(prompt_text).input_ids  # FastChat's own tokenization: the tokenizer adds <s>
    tokens = [lm.tokenizer.decode([i]) for i in [*ids, 2]]
    logprobs = [None] + [scores.get(p, -1.0) for p in range(1, len(ids))] + [-0.5]
    return {"choices": [{"index": 0, "text": "", "logprobs": {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": [{}] * len(tokens), "text_offset": [0] * len(tokens)}}]}  # fmt: skip


@pytest.mark.parametrize(
    "context",
    ["Question: Which organ secretes insulin?\nA. Liver\nB. Pancreas\nAnswer:", "<s>[INST] السؤال: ما العضو؟ [/INST]"],
)
def test_the_continuation_is_read_from_the_end_of_the_echo(lm, context):
    continuation = " B" if context.startswith("Q") else "ب"
    context_enc, continuation_enc = lm._encode_pair(context, continuation)
    sent = context_enc + continuation_enc
    assert sent[0] == lm.tokenizer.bos_token_id and sent[1] != lm.tokenizer.bos_token_id, "exactly one <s>, as hf"
    text = lm.create_message([sent])
    assert not text.startswith("<s>"), "FastChat adds the <s> itself"
    n = len(continuation_enc)
    positions = range(len(sent) - n, len(sent))
    reply = fastchat_reply(lm, text, {p: -2.0 - p for p in positions})
    [(logprob, greedy)] = lm.parse_logprobs(outputs=[reply], tokens=[sent], ctxlens=[len(context_enc)])
    assert logprob == pytest.approx(sum(-2.0 - p for p in positions)) and greedy is False
    assert lm._create_payload(text) == {
        "model": "tiny",
        "prompt": text,
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": 1,
        "echo": True,
    }


def test_a_reply_that_does_not_line_up_is_an_error(lm):
    context_enc, continuation_enc = lm._encode_pair("Answer:", " A")
    sent = context_enc + continuation_enc
    double_bos = fastchat_reply(lm, "<s>" + lm.create_message([sent]), {})
    with pytest.raises(FastChatReplyError, match=r"echoed .* token log-probabilities, expected"):
        lm.parse_logprobs(outputs=[double_bos], tokens=[sent], ctxlens=[len(context_enc)])
    other = fastchat_reply(lm, "", {}, ids=[*sent[:2], sent[2] + 1, *sent[3:]])  # same length, one token differs
    with pytest.raises(FastChatReplyError, match="tokenized the prompt differently from lm-eval at token"):
        lm.parse_logprobs(outputs=[other], tokens=[sent], ctxlens=[len(context_enc)])


def test_api_loglikelihoods_equal_the_hf_backend(tiny_model_dir, tmp_path):
    """Every choice of the first question of each of the 19 default tasks, plain and chat-templated, within 1e-4."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    api_url = ["--api-url", os.environ["BIMEDIX_EVAL_API_URL"]] if os.environ.get("BIMEDIX_EVAL_API_URL") else []
    for chat in ([], ["--chat-template", "--system", "project"]):
        runs = {}
        for backend in ("hf", "api"):
            name = f"{backend}{'-chat' if chat else ''}"
            cmd = [sys.executable, "-m", "eval_tasks", "run", "--model", str(tiny_model_dir), "--backend", backend, "--limit", "1", "--results-dir", str(tmp_path), "--run-name", name, *chat]  # fmt: skip
            done = subprocess.run(
                cmd + (api_url if backend == "api" else []),
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            runs[backend] = tmp_path / name / "samples"
        compared = 0
        for path in sorted(runs["hf"].glob("*.jsonl")):
            hf = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            api = [json.loads(line) for line in (runs["api"] / path.name).read_text(encoding="utf-8").splitlines()]
            for h, a in zip(hf, api, strict=True):
                assert h["arguments"] == a["arguments"]
                for (h_ll, _), (a_ll, _) in zip(h["filtered_resps"], a["filtered_resps"], strict=True):
                    assert abs(h_ll - a_ll) < 1e-4, f"{path.name} doc {h['doc_id']}: hf {h_ll} api {a_ll}"
                    compared += 1
        assert compared == 74  # 19 questions: 16 with 4 options, 2 PubMedQA with 3, MedArabiQ's first with 4
