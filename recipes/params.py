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


@dataclass(frozen=True)
class ParamCount:
    total: int  # base model parameters
    trainable: int  # adapter parameters
    by_group: dict[str, int]  # attention / experts / router
    source: str  # where the dimensions came from

    @property
    def share(self) -> float:
        return self.trainable / self.total


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
    return ParamCount(total, sum(groups.values()), {k: v for k, v in groups.items() if v}, source)
