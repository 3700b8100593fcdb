"""The numbers the READMEs give for the adapter come from the shapes: peft's full-size delta
weight of each fused expert parameter, and how "as BiMediX" differs from BiMediX's own layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bimedix.paths import ROOT
from recipes.config import load
from recipes.params import count
from tests.recipes.helpers import run_cli

BILINGUAL = load(ROOT / "recipes" / "bilingual" / "qlora.yaml").data
READMES = {v: (ROOT / "recipes" / v / "README.md").read_text(encoding="utf-8") for v in ("bilingual", "arabic", "english")}  # fmt: skip
RECIPES_README = (ROOT / "recipes" / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def mixtral():
    return count(BILINGUAL)  # no config.json here: transformers' MixtralConfig defaults, Mixtral-8x7B


class Transformers4Mixtral(nn.Module):
    """Mixtral as transformers 4.36 laid it out (what BiMediX trained): every expert's w1, w3
    and w2 an nn.Linear, the router an nn.Linear."""

    def __init__(self, hidden: int, inter: int, kv: int, experts: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(layers):
            layer = nn.Module()
            layer.q_proj, layer.o_proj = nn.Linear(hidden, hidden, bias=False), nn.Linear(hidden, hidden, bias=False)
            layer.k_proj, layer.v_proj = nn.Linear(hidden, kv, bias=False), nn.Linear(hidden, kv, bias=False)
            layer.gate = nn.Linear(hidden, experts, bias=False)
            layer.experts = nn.ModuleList()
            for _ in range(experts):
                expert = nn.Module()
                expert.w1, expert.w3 = nn.Linear(hidden, inter, bias=False), nn.Linear(hidden, inter, bias=False)
                expert.w2 = nn.Linear(inter, hidden, bias=False)
                layer.experts.append(expert)
            self.layers.append(layer)


def test_unfused_count_is_what_peft_gives_transformers_4s_layout(mixtral):
    from peft import LoraConfig, get_peft_model

    with torch.device("meta"):
        model = Transformers4Mixtral(hidden=4096, inter=14336, kv=1024, experts=8, layers=32)
        config = LoraConfig(
            r=128, lora_alpha=128, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate", "w1", "w2", "w3"]
        )
        peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert mixtral.unfused_trainable == trainable == 1_937_801_216
    assert f"{mixtral.unfused_share:.2%}" == "4.15%" and f"{mixtral.share:.2%}" == "3.86%"


def test_delta_weights_are_the_full_expert_parameters(mixtral):
    assert mixtral.delta_elements == {
        "mlp.experts.gate_up_proj": 8 * 2 * 14336 * 4096,  # 939,524,096
        "mlp.experts.down_proj": 8 * 4096 * 14336,
        "mlp.gate.weight": 8 * 4096,
    }


def test_readmes_give_the_numbers_the_shapes_give(mixtral):
    gate_up = mixtral.delta_elements["mlp.experts.gate_up_proj"]
    down = mixtral.delta_elements["mlp.experts.down_proj"]
    for text in (f"{gate_up:,}", f"{gate_up * 2 / 1e9:.2f} GB", f"{gate_up * 4 / 1e9:.2f} GB", f"{down:,}",
                 f"{mixtral.unfused_trainable:,}", f"{mixtral.unfused_share:.2%}", f"{mixtral.trainable:,}"):  # fmt: skip
        assert text in RECIPES_README, text
    for variant, readme in READMES.items():
        assert f"{mixtral.share:.2%}" in readme and f"{mixtral.unfused_share:.2%}" in readme, variant
        assert f"{gate_up * 2 / 1e9:.2f} GB per layer for gate_up in bf16" in readme, variant
        assert "~15 to 20 GB" not in readme and "~50 GB" not in readme, variant  # the estimates without ΔW


def test_params_command_prints_the_delta_weights():
    done = run_cli("params", "bilingual")
    assert done.returncode == 0, done.stderr
    assert "peft materialises the full delta weight of mlp.experts.gate_up_proj: 939,524,096 elements per layer (1.88 GB in bf16, 3.76 GB in fp32)" in done.stdout  # fmt: skip
    assert "the same rank trains 1,937,801,216, 4.15%" in done.stdout
