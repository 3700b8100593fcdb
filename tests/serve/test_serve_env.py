"""The serving environment holds FastChat and computes with the same stack as the main one."""

from __future__ import annotations

from importlib import metadata

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bimedix.envs import ENVS, canonical, read_lock


def lock_version(name: str, package: str) -> str:
    return next(e.version for e in read_lock(ENVS[name].lock_path) if e.key == canonical(package))


def test_fastchat_and_gradio_are_the_pinned_ones():
    import fastchat

    assert fastchat.__version__ == "0.2.36"
    assert int(metadata.version("gradio").split(".")[0]) < 6


def test_model_stack_matches_the_main_environment():
    for package in ["transformers", "tokenizers", "peft", "accelerate"]:
        assert metadata.version(package) == lock_version("main", package), package
    assert torch.__version__.split("+")[0] == lock_version("main", "torch")


def test_tiny_model_loads_and_generates_here(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    inputs = tokenizer("هل تتناول أي أدوية حاليًا؟", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs.input_ids.shape[1] + 5
