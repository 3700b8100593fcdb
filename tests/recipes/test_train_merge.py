"""The tiny recipe trains through the real `axolotl train`, tunes every expert and the router,
and `merge` keeps all of it (experts and router included)."""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml
from safetensors.torch import load_file

from bimedix.chat import render
from bimedix.paths import ROOT
from recipes.trainlog import summarise
from tests.recipes.helpers import TRAIN_STEPS, fixture_rows

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)

TINY = yaml.safe_load((ROOT / "recipes" / "tiny" / "qlora.yaml").read_text(encoding="utf-8"))
PROMPT = [{"role": "user", "content": "ما سَبَبُ الإسقربوط؟ What causes scurvy? ١٢٣"}]


def test_training_logs_a_finite_loss_every_step(trained):
    summary = summarise((trained / "train.log").read_text(encoding="utf-8"))
    assert len(summary.losses) == TRAIN_STEPS
    assert summary.all_finite, summary.losses
    assert summary.runtime and summary.runtime > 0


def test_resolved_recipe_is_the_tiny_recipe_with_overrides(trained):
    resolved = yaml.safe_load((trained / "axolotl.yaml").read_text(encoding="utf-8"))
    assert resolved["max_steps"] == TRAIN_STEPS
    assert resolved["datasets"][0]["path"].endswith("processed/bilingual/train.jsonl")
    for key in ("lora_target_modules", "lora_target_parameters", "model_config", "chat_template_jinja", "merge_method"):
        assert resolved[key] == TINY[key]


def test_router_aux_loss_was_on(trained):
    config = json.loads((trained / "adapter" / "config.json").read_text())
    assert config["output_router_logits"] is True
    assert config["router_aux_loss_coef"] == pytest.approx(0.02)


@pytest.fixture(scope="module")
def peft_model(trained, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, trained / "adapter").eval()


def lora_deltas(model) -> dict[str, torch.Tensor]:
    """Every ParamWrapper's (expert or router) LoRA delta, by module name and parameter."""
    from peft.tuners.lora.layer import ParamWrapper

    return {
        f"{name}.{module.parameter_name}": module.get_delta_weight("default").detach()
        for name, module in model.named_modules()
        if isinstance(module, ParamWrapper)
    }


def test_adapter_trains_every_expert_and_the_router(peft_model, tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    layers, experts = config["num_hidden_layers"], config["num_local_experts"]
    deltas = lora_deltas(peft_model)
    expert_deltas = {k: v for k, v in deltas.items() if ".mlp.experts" in k}
    router_deltas = {k: v for k, v in deltas.items() if ".mlp.gate" in k}
    # one fused delta per layer and expert weight (gate_up_proj, down_proj), one slice per expert
    assert len(expert_deltas) == 2 * layers
    assert all(delta.shape[0] == experts for delta in expert_deltas.values())
    trained_slices = sum(int(delta[e].abs().max() > 0) for delta in expert_deltas.values() for e in range(experts))
    assert trained_slices == 2 * layers * experts  # 32 on the tiny model: every expert of every layer
    assert len(router_deltas) == layers
    for name, delta in router_deltas.items():
        assert delta.shape == (experts, config["hidden_size"]), name
        assert delta.abs().max() > 1e-6, f"{name}: the router did not move"


def test_adapter_file_holds_exactly_what_the_recipe_counts(trained):
    from recipes.params import count

    tensors = load_file(trained / "adapter" / "adapter_model.safetensors")
    stored = sum(t.numel() for t in tensors.values())
    result = count(TINY)
    assert result.trainable == stored
    assert set(result.by_group) == {"attention", "experts", "router"}


def test_labels_train_the_assistant_turns_only(trained, tiny_model_dir):
    """The prepared data is the project's template, Arabic edge cases intact, and only the
    assistant turns (with their </s>) carry labels."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = fixture_rows()
    prepared = [load_from_disk(p) for p in (trained / "prepared").iterdir() if (p / "dataset_info.json").exists()]
    train = next(d for d in prepared if len(d) == len(rows))
    expected_text = {render(r["messages"]) for r in rows}
    expected_labels = {"".join(m["content"] + "</s>" for m in r["messages"] if m["role"] == "assistant") for r in rows}
    decoded_text, decoded_labels = set(), set()
    for row in train:
        decoded_text.add(tokenizer.decode(row["input_ids"]))
        labelled = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
        assert all(label in (-100, t) for t, label in zip(row["input_ids"], row["labels"], strict=True))
        decoded_labels.add(tokenizer.decode(labelled).replace("</s> ", "</s>"))
    assert decoded_text == expected_text
    assert {s.strip() for s in decoded_labels} == {s.strip() for s in expected_labels}
    arabic = "".join(expected_text)
    for mark in ("\u200f", "ـ", "َ", "٣"):  # RTL mark, tatweel, a diacritic, an Arabic-Indic digit
        assert mark in arabic


def test_merged_logits_equal_base_plus_adapter(merged, peft_model, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template == (ROOT / "templates" / "chat_template.jinja").read_text(encoding="utf-8")
    ids = tokenizer.apply_chat_template(PROMPT, return_tensors="pt", return_dict=True)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        merged_logits, peft_logits, base_logits = model(ids).logits, peft_model(ids).logits, base(ids).logits
    assert (merged_logits - peft_logits).abs().max() < 1e-4
    assert (peft_logits - base_logits).abs().max() > 1e-3  # the adapter changes the model at all


def test_merge_changed_every_expert_and_the_router(merged, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    merged_state = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).state_dict()
    base_state = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    expert_keys = [k for k in base_state if ".mlp.experts." in k]
    router_keys = [k for k in base_state if k.endswith(".mlp.gate.weight")]
    assert expert_keys and router_keys
    for key in expert_keys:  # fused (experts, out, in): compare expert by expert
        per_expert = (merged_state[key] - base_state[key]).flatten(1).abs().amax(dim=1)
        assert bool((per_expert > 0).all()), f"{key}: an expert was not merged"
    for key in router_keys:
        assert (merged_state[key] - base_state[key]).abs().max() > 1e-6, key
    assert "MERGE INCOMPLETE" not in (merged.parent / "merge.log").read_text(encoding="utf-8")


def test_training_runs_on_every_usable_core(trained):
    """The training process itself reports its threads (the plugin reads torch and its environment
    there): accelerate alone would start it with OMP_NUM_THREADS=1, one core of the machine."""
    from recipes.world import usable_cores

    log = (trained / "train.log").read_text(encoding="utf-8")
    found = re.findall(r"bimedix: training process rank 0 of 1 \(pid \d+\): torch uses (\d+) CPU threads, OMP_NUM_THREADS=(\w+), planned (\d+)(.*)", log)  # fmt: skip
    assert len(found) == 1, log[-2000:]
    used, omp, planned, warning = found[0]
    cores = usable_cores()
    assert int(used) == int(omp) == int(planned) == cores and not warning.strip()
