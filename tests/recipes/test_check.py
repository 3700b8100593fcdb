"""`make check-recipes`: every shipped recipe passes; each kind of broken recipe gets its own
clear message, with the file and line where the cause is written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bimedix.paths import ROOT
from recipes.checks import check_recipe, errors
from recipes.cli import CheckTarget, main, run_check, shipped_targets
from recipes.config import RecipeError, load, merge
from recipes.registry import load_registry

REGISTRY = load_registry()
TINY = ROOT / "recipes" / "tiny" / "qlora.yaml"
BILINGUAL = ROOT / "recipes" / "bilingual" / "qlora.yaml"


def test_every_shipped_recipe_and_overlay_passes():
    targets = shipped_targets(REGISTRY)
    assert len(targets) == len(REGISTRY.variants) + sum(len(o.applies_to) for o in REGISTRY.overlays.values())
    reports = run_check(targets, REGISTRY)
    failed = {r.target.label: [str(p) for p in errors(r.problems)] for r in reports if not r.ok}
    assert not failed


def test_check_command_exits_zero_on_the_shipped_recipes(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"{len(shipped_targets(REGISTRY))} checked, 0 failed" in out


def problems_of(recipe, hardware="cpu") -> list[str]:
    return [str(p) for p in errors(check_recipe(recipe, REGISTRY.hardware[hardware], REGISTRY))]


def mutated(path=TINY, **changes):
    recipe = load(path)
    for key, value in changes.items():
        if value is _DELETE:
            recipe.data.pop(key, None)
        else:
            recipe.data[key] = value
    return recipe


_DELETE = object()
DATASET = {"ds_type": "json", "type": "chat_template", "field_messages": "messages", "roles_to_train": ["assistant"]}


def zero3(tmp_path) -> str:
    path = tmp_path / "zero3.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto"}))
    return str(path)


BROKEN = {
    "typo key": ({"lora_rr": 16}, "lora_rr: unknown key: Axolotl would ignore it silently (did you mean lora_r?)"),
    "lora_target_linear": ({"lora_target_linear": True}, "lora_target_linear: trains the attention only"),
    "experts missing": ({"lora_target_parameters": ["mlp.gate.weight"]}, "the experts are not targeted"),
    "router missing": (
        {"lora_target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]},
        "the router is not targeted",
    ),
    "attention missing": ({"lora_target_modules": ["q_proj", "v_proj"]}, "the attention is not fully targeted"),
    "dropout": ({"lora_dropout": 0.05}, "lora_dropout: must be 0 with lora_target_parameters"),
    "packing off": ({"sample_packing": False}, "sample_packing: must be true"),
    "unknown template name": ({"chat_template": "chatml"}, "chat_template: unknown chat template 'chatml'"),
    "unknown template file": (
        {"chat_template_jinja": "templates/other.jinja"},
        "chat_template_jinja: unknown chat template file 'templates/other.jinja'",
    ),
    "merge drops experts": ({"merge_method": "memory_efficient"}, "merge_method: must be legacy"),
    "merge method unset": ({"merge_method": _DELETE}, "merge_method: must be legacy"),
    "no aux loss": ({"model_config": {"router_aux_loss_coef": 0.02}}, "output_router_logits: true"),
    "model_config typo": (
        {"model_config": {"output_router_logits": True, "router_aux_loss_coef": 0.02, "router_aux_loss_coeff": 0.1}},
        "model_config.router_aux_loss_coeff: unknown mixtral config attribute",
    ),
    "kernel left to Axolotl": ({"lora_qkv_kernel": _DELETE}, "lora_qkv_kernel: must be false"),
    "blank value": ({"lora_alpha": None}, "lora_alpha: blank value"),
    "nowhere path": (
        {"datasets": [{**DATASET, "path": "corpora/none.jsonl"}]},
        "datasets[0].path: corpora/none.jsonl: no such file or folder, and no make target produces it",
    ),
    "output into the repo": (
        {"output_dir": "recipes/tiny/out"},
        "output_dir: recipes/tiny/out: outputs go under outputs/",
    ),
    "schema": ({"load_in_4bit": False}, "Axolotl schema: Require cfg.load_in_4bit to be True for qlora"),
    "quantized experts on cpu": ({"quantize_moe_experts": True}, "quantize_moe_experts: needs CUDA"),
    "fsdp on cpu": (
        {"fsdp_version": 2},
        "fsdp_version: FSDP needs CUDA (cpu has none): Axolotl builds its device mesh on 'cuda'",
    ),
    "ray on cpu": (
        {"use_ray": True, "ray_num_workers": 2},
        "use_ray: Axolotl's Ray Train asks one GPU per worker (axolotl/cli/train.py:130; cpu has none)",
    ),
    "flash on cpu": ({"attn_implementation": "flash_attention_2"}, "packed samples stay apart only with sdpa"),
    "checkpointing left to Axolotl (reentrant)": (
        {"gradient_checkpointing_kwargs": _DELETE},
        "gradient_checkpointing: checkpointing is left to Axolotl (reentrant under ZeRO-3 in 0.21, everywhere in "
        "0.19): under reentrant checkpointing the router logits carry no gradient",
    ),
    "reentrant checkpointing": (
        {"gradient_checkpointing_kwargs": {"use_reentrant": True}},
        "gradient_checkpointing_kwargs: checkpointing is reentrant",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_recipe_gets_a_clear_message(case):
    changes, expected = BROKEN[case]
    found = problems_of(mutated(**changes))
    assert any(expected in p for p in found), found
    assert all(p.startswith("recipes/tiny/qlora.yaml") for p in found), found


def test_gpu_recipe_must_quantize_the_experts():
    found = problems_of(mutated(BILINGUAL, quantize_moe_experts=False), "1x-h100-80gb")
    assert any("quantize_moe_experts: must be true for QLoRA on a GPU" in p for p in found), found


@pytest.mark.parametrize("overlay", ["zero2", "fsdp2"])
def test_zero3_is_refused_with_packing_and_with_qlora(tmp_path, overlay):
    recipe = merge(load(BILINGUAL), load(REGISTRY.overlay(overlay).file))
    recipe.data.pop("fsdp_config", None)
    recipe.data.pop("fsdp_version", None)
    recipe.data["deepspeed"] = zero3(tmp_path)
    found = problems_of(recipe, "8x-h100-80gb")
    assert any("ZeRO-3 with Mixtral and sample packing is known broken" in p for p in found), found
    assert any("QLoRA with ZeRO-3 is known fragile" in p for p in found), found


def test_problems_point_at_the_line_of_the_cause(tmp_path, capsys):
    text = TINY.read_text(encoding="utf-8")
    line = text.splitlines().index("lora_r: 8") + 1
    broken = tmp_path / "typo.yaml"
    broken.write_text(text.replace("lora_r: 8", "lora_rr: 8"), encoding="utf-8")
    assert main(["check", str(broken), "--hardware", "cpu"]) == 1
    out = capsys.readouterr().out
    assert f"{broken}:{line}: lora_rr: unknown key" in out
    assert "1 checked, 1 failed" in out


def test_overlay_keys_point_at_the_overlay_file(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("# Training\ndeepspeed: recipes/multigpu/zero3.json\ngradient_acumulation_steps: 2\n")
    recipe = merge(load(BILINGUAL), load(overlay))
    found = problems_of(recipe, "8x-h100-80gb")
    assert any(p.startswith(f"{overlay}:3: gradient_acumulation_steps: unknown key") for p in found), found
    assert any(p.startswith(f"{overlay}:2: deepspeed: recipes/multigpu/zero3.json: no such file") for p in found), found


def test_unreadable_recipes_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: models/x\nlora_r: [8\n")
    with pytest.raises(RecipeError, match=rf"^{bad}:\d+: not valid YAML"):
        load(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="expected a mapping of Axolotl keys, got list"):
        load(listing)
    with pytest.raises(RecipeError, match="no such file"):
        load(tmp_path / "missing.yaml")


def test_inline_template_must_be_the_project_template():
    project = (ROOT / "templates" / "chat_template.jinja").read_text(encoding="utf-8")
    assert not problems_of(mutated(chat_template_jinja=project))
    found = problems_of(mutated(chat_template_jinja="{{ messages }}"))
    assert any("an inline template that is not the project's" in p for p in found), found


def test_checkpointing_may_be_off_or_fsdp_non_reentrant():
    assert not problems_of(mutated(gradient_checkpointing=False, gradient_checkpointing_kwargs=_DELETE))
    recipe = merge(load(BILINGUAL), load(REGISTRY.overlay("fsdp2").file))
    assert recipe.data["gradient_checkpointing"] is False
    assert recipe.data["fsdp_config"]["activation_checkpointing"] is True
    assert not problems_of(recipe, "8x-h100-80gb")
    recipe.data["gradient_checkpointing"] = True
    found = problems_of(recipe, "8x-h100-80gb")
    assert any("gradient_checkpointing: must be false with fsdp_config.activation_checkpointing" in p for p in found), (
        found
    )


@pytest.mark.parametrize("versioned", [True, False], ids=["fsdp_version 2", "fsdp_version unset"])
@pytest.mark.parametrize("optimizer", ["paged_adamw_8bit", "adamw_bnb_8bit", "adamw_8bit", "paged_adamw_32bit"])
def test_fsdp2_refuses_the_bitsandbytes_optimizers(optimizer, versioned):
    """Axolotl refuses adamw_8bit / adamw_bnb_8bit with FSDP2; the paged ones are the same family.
    An fsdp_config without fsdp_version is FSDP2 to Axolotl 0.21, and so to the check."""
    recipe = merge(load(BILINGUAL), load(REGISTRY.overlay("fsdp2").file))
    assert recipe.data["optimizer"] in REGISTRY.rules.fsdp2_optimizers
    recipe.data["optimizer"] = optimizer
    if not versioned:
        recipe.data.pop("fsdp_version")
        recipe.data["fsdp_config"].pop("fsdp_version", None)
    found = problems_of(recipe, "8x-h100-80gb")
    assert any(p.startswith("recipes/multigpu/fsdp2.yaml") and f"optimizer: {optimizer!r} with FSDP2" in p for p in found), found  # fmt: skip


def test_an_overlay_keeps_the_recipes_global_batch(tmp_path):
    overlay = tmp_path / "zero2-big.yaml"
    overlay.write_text(
        "# Training\ndeepspeed: recipes/multigpu/deepspeed_zero2.json\ngradient_accumulation_steps: 16\n"
    )
    target = CheckTarget("bilingual + big", [BILINGUAL, overlay], "8x-h100-80gb", "1x-h100-80gb")
    (report,) = run_check([target], REGISTRY)
    assert [str(p) for p in errors(report.problems)] == [
        f"{overlay}:3: gradient_accumulation_steps: 8 GPUs x micro_batch_size 1 x 16 = 128 packed rows per step; "
        "the recipe's global batch is 16"
    ]


GPU_TARGETS = [t for t in shipped_targets(REGISTRY) if REGISTRY.hardware[t.hardware].cuda]


@pytest.mark.parametrize("target", GPU_TARGETS, ids=[t.label for t in GPU_TARGETS])
def test_gpu_recipes_pack_with_torchs_own_varlen_kernel(target):
    """No flash-attn build: sdpa with Axolotl's sdpa_varlen, which serves Mixtral-8x7B's shape."""
    from axolotl.monkeypatch.attention.sdpa_varlen import _VARLEN_MAX_HEAD_DIM
    from transformers import MixtralConfig

    recipe = load(target.files[0])
    for extra in target.files[1:]:
        recipe = merge(recipe, load(extra))
    assert recipe.data["attn_implementation"] == "sdpa"
    assert recipe.data["sdpa_varlen"] is True
    mixtral = MixtralConfig()  # Mixtral-8x7B's dimensions; the varlen kernel needs head_dim <= 256, no window
    assert mixtral.hidden_size // mixtral.num_attention_heads <= _VARLEN_MAX_HEAD_DIM
    assert mixtral.sliding_window is None


def test_gpu_extras_install_without_building_against_torch():
    """Nothing in requirements/gpu.txt needs torch at build time (flash-attn does, and pip's build
    isolation hides torch from it); `make env-gpu` installs the file constrained by the lock."""
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements" / "gpu.txt").read_text().splitlines()]
    names = {line.split("==")[0].split("[")[0].lower() for line in lines if line}
    assert "flash-attn" not in names and "flash_attn" not in names
    done = subprocess.run(
        [sys.executable, "-m", "recipes", "install-gpu", "--print"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(
        "pip install --python " + sys.executable + " -r requirements/gpu.txt -c requirements/main.lock"
    )
