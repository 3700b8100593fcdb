"""How many parameters a recipe's adapter trains, counted by peft itself on a weightless model.

The model is built on PyTorch's meta device (shapes, no memory), from the base model's
config.json when it is on this machine, else from transformers' MixtralConfig defaults, which
are Mixtral-8x7B's dimensions. peft then wraps it exactly as Axolotl does (target_modules and
target_parameters), so the count is the adapter's, expert by expert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bimedix.paths import ROOT

# Fused expert parameters of transformers 5: the name, and how many of transformers 4's
# per-expert nn.Linear projections it stacks along its output dimension (gate_up_proj = w1 and w3).
FUSED_PROJECTIONS = {"gate_up_proj": 2, "down_proj": 1}


@dataclass(frozen=True)
class ParamCount:
    total: int  # base model parameters
    trainable: int  # adapter parameters
    by_group: dict[str, int]  # attention / experts / router
    source: str  # where the dimensions came from
    # elements of the full-size weight peft's ParamWrapper builds per targeted parameter (ΔW in peft 0.20, W + s·B·A in 0.21)
    # (one layer's, e.g. {"mlp.experts.gate_up_proj": 939_524_096}); its gradient is as large
    delta_elements: dict[str, int]
    # the same targets and rank on transformers 4's layout (each expert's w1, w2, w3 an nn.Linear
    # with its own LoRA), as BiMediX trained on transformers 4.36
    unfused_trainable: int

    @property
    def share(self) -> float:
        return self.trainable / self.total

    @property
    def unfused_share(self) -> float:
        return self.unfused_trainable / self.total


def _config(data: dict[str, Any]):
    from transformers import AutoConfig, MixtralConfig

    base = data.get("base_model")
    if isinstance(base, str):
        folder = Path(base) if Path(base).is_absolute() else ROOT / base
        if (folder / "config.json").exists():
            return AutoConfig.from_pretrained(folder), f"{base}/config.json"
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base, "config.json")
            if isinstance(cached, str):
                return AutoConfig.for_model(**json.loads(Path(cached).read_text())), f"{base} (cached config.json)"
        except Exception:  # no cache: fall back to the Mixtral-8x7B dimensions
            pass
    return MixtralConfig(), "transformers' MixtralConfig defaults (Mixtral-8x7B)"


def count(data: dict[str, Any]) -> ParamCount:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config, source = _config(data)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        total = sum(p.numel() for p in model.parameters())
        lora = LoraConfig(
            r=int(data.get("lora_r") or 8),
            lora_alpha=int(data.get("lora_alpha") or 8),
            lora_dropout=float(data.get("lora_dropout") or 0.0),
            target_modules=list(data.get("lora_target_modules") or []),
            target_parameters=list(data.get("lora_target_parameters") or []),
        )
        model = get_peft_model(model, lora)
    groups = {"attention": 0, "experts": 0, "router": 0, "other": 0}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = (
            "experts" if ".mlp.experts." in name else
            "router" if ".mlp.gate." in name else
            "attention" if ".self_attn." in name else "other"
        )  # fmt: skip
        groups[group] += param.numel()
    trainable = sum(groups.values())
    deltas, unfused = _param_wrappers(model)
    return ParamCount(total, trainable, {k: v for k, v in groups.items() if v}, source, deltas, trainable + unfused)


def _param_wrappers(model) -> tuple[dict[str, int], int]:
    """From the shapes of the parameters peft wraps: the elements of each one's delta weight
    (largest layer), and how many more LoRA parameters transformers 4's unfused layout has.

    A fused parameter (E experts, P projections stacked along the output, out, in) gets one A
    per expert (r x in) shared by its P projections, and one B (out x r): r(in + out) per expert.
    Unfused, each projection has its own A and B: P r(in + out / P) per expert, r(P - 1) in more.
    """
    from peft.tuners.lora.layer import ParamWrapper

    deltas: dict[str, int] = {}
    extra = 0
    for name, module in model.named_modules():
        if not isinstance(module, ParamWrapper):
            continue
        param = module.get_param()
        tail = name.split(".layers.", 1)[-1].split(".", 1)[-1].removesuffix(".base_layer")
        key = f"{tail}.{module.parameter_name}"
        deltas[key] = max(deltas.get(key, 0), param.numel())
        parts = FUSED_PROJECTIONS.get(module.parameter_name, 1) if param.ndim == 3 else 1
        rank = next(iter(module.r.values()))
        extra += module.num_experts * rank * module.in_features * (parts - 1)
    return deltas, extra
