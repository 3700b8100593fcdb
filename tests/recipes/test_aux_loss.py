"""The router learns from its load-balancing loss: the tiny recipe, trained through the real
`axolotl train` for one optimizer step from the same (seeded) adapter, updates the router's LoRA
differently with router_aux_loss_coef 0.02 than with 0.

Under reentrant checkpointing (Axolotl 0.19's default when gradient_checkpointing_kwargs is
unset; 0.21's under ZeRO-3) the router logits that transformers collects for the aux loss carry no gradient: both runs
would update the router identically. The control: the last layer's expert LoRA, which the aux
loss cannot reach (the last router reads the hidden state before those experts), must be updated
identically in both runs, which shows that the two runs start from the same adapter and differ
in the coefficient only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recipes.config import dump, load
from recipes.launch import run_logged, train_command
from tests.recipes.helpers import run_cli

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)

ONE_STEP = [
    "--launcher", "python",
    "--set", "max_steps=1",  # one optimizer step: the control below holds exactly for one
    "--set", "warmup_ratio=0",  # else the first step has learning rate 0
    "--set", "max_grad_norm=0",  # clipping would scale every gradient by the aux loss's share of the norm
    "--set", "eval_strategy=no", "--unset", "eval_steps",
]  # fmt: skip


def lora(adapter: Path) -> dict[str, torch.Tensor]:
    return load_file(adapter / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def runs(tiny_model_dir, data_dir, tmp_path_factory) -> dict[float, dict[str, torch.Tensor]]:
    """The adapters after one step with router_aux_loss_coef 0.02 (the recipe) and 0."""
    out = tmp_path_factory.mktemp("aux")
    done = run_cli("train", "tiny", "--data-dir", str(data_dir), "--output-root", str(out / "coef-0.02"), *ONE_STEP)
    assert done.returncode == 0, f"training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    resolved = out / "coef-0.02" / "tiny"
    config = load(resolved / "axolotl.yaml")
    assert config.data["model_config"]["router_aux_loss_coef"] == pytest.approx(0.02)
    # The same resolved recipe with the coefficient at 0 (which check-recipes refuses, rightly),
    # run by `axolotl train` directly.
    config.data["model_config"]["router_aux_loss_coef"] = 0.0
    zero = out / "coef-0"
    config.data["output_dir"] = str(zero / "adapter")
    config.data["dataset_prepared_path"] = str(zero / "prepared")
    dump(config, zero / "axolotl.yaml", "the tiny recipe, router_aux_loss_coef 0")
    code, text = run_logged(train_command(zero / "axolotl.yaml", "python"), zero / "train.log")
    assert code == 0, text[-3000:]
    return {0.02: lora(resolved / "adapter"), 0.0: lora(zero / "adapter")}


def router_deltas(adapter: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each router's LoRA update B @ A (after one step A has not moved yet: B starts at zero)."""
    prefixes = sorted({k.removesuffix("lora_A.weight") for k in adapter if k.endswith(".mlp.gate.lora_A.weight")})
    return {p: adapter[p + "lora_B.weight"] @ adapter[p + "lora_A.weight"] for p in prefixes}


def test_router_update_depends_on_the_aux_loss_coefficient(runs):
    with_aux, without = router_deltas(runs[0.02]), router_deltas(runs[0.0])
    assert with_aux and with_aux.keys() == without.keys()
    for name, delta in with_aux.items():
        change = (delta - without[name]).abs().max().item()
        assert change > 1e-3 * without[name].abs().max().item(), (
            f"{name}: the router took the same step with router_aux_loss_coef 0.02 as with 0: "
            "the aux loss carries no gradient (reentrant checkpointing?)"
        )


def test_control_the_runs_differ_in_the_coefficient_only(runs, tiny_model_dir):
    last = json.loads((tiny_model_dir / "config.json").read_text())["num_hidden_layers"] - 1
    control = [k for k in runs[0.02] if f"layers.{last}.mlp.experts" in k]
    assert control
    for key in control:
        assert torch.equal(runs[0.02][key], runs[0.0][key]), (
            f"{key}: the aux loss cannot reach the last layer's experts, yet the two runs differ there: "
            "they did not start from the same adapter (is the adapter's initialisation seeded?)"
        )
