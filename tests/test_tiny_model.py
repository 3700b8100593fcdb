"""The tiny model is a real top-2 Mixture-of-Experts that loads, generates and routes."""

from __future__ import annotations

import hashlib

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bimedix.chat import chat_template
from bimedix.tiny_model import BUILD_INFO, build
from tests.moe_routing import zero_one_expert


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_config_is_a_mixtral_moe(model):
    config = model.config
    assert config.model_type == "mixtral"
    assert config.num_local_experts >= 4
    assert config.num_experts_per_tok == 2
    assert config.num_hidden_layers == 2
    assert config.hidden_size == 64
    assert config.router_aux_loss_coef == 0.02


def test_generates(model, tokenizer):
    inputs = tokenizer("A 45-year-old man presents with chest pain.", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert out.shape[1] == inputs.input_ids.shape[1] + 12
    assert isinstance(tokenizer.decode(out[0, inputs.input_ids.shape[1] :]), str)


def test_router_logits_cover_every_expert(model, tokenizer):
    inputs = tokenizer("ألم في الصدر منذ يومين and shortness of breath", return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_router_logits=True)
    n_tokens = inputs.input_ids.shape[1]
    assert len(out.router_logits) == model.config.num_hidden_layers
    for logits in out.router_logits:
        assert logits.shape == (n_tokens, model.config.num_local_experts)


def test_each_token_is_computed_by_exactly_its_top2_experts(model, tokenizer):
    """Zero one expert: only the tokens whose top-2 includes it change. That is sparse routing."""
    top2, _, uses, changed = zero_one_expert(model, tokenizer, layer_index=0)
    assert torch.equal(changed, uses)
    assert len({tuple(sorted(t)) for t in top2.tolist()}) > 1, "every token went to the same experts"


def test_tokenizer_round_trips_arabic_edge_cases(tokenizer):
    texts = [
        "الطبيبُ يَسألُ المريضَ",  # diacritics
        "الطـــبيب",  # tatweel
        "الجرعة ٤٠٠ ملغ و 400 mg",  # Arabic-Indic and ASCII digits
        "المريض يتناول Atorvastatin 20 mg يوميًا",  # mixed script
        "\u200fنعم\u200e yes",  # RTL / LTR marks
    ]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == text
    assert tokenizer("x").input_ids[0] == tokenizer.bos_token_id


def test_tokenizer_carries_the_project_chat_template(tokenizer):
    assert tokenizer.chat_template == chat_template()


def test_build_is_deterministic(tiny_model_dir, tmp_path):
    again = build(tmp_path / "tiny", force=True)
    for name in ["model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json", BUILD_INFO]:
        first = hashlib.sha256((tiny_model_dir / name).read_bytes()).hexdigest()
        second = hashlib.sha256((again / name).read_bytes()).hexdigest()
        assert first == second, name


def test_rebuild_with_same_inputs_does_nothing(tiny_model_dir):
    weights = tiny_model_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    build(tiny_model_dir)
    assert weights.stat().st_mtime_ns == mtime
