"""The registry (recipes/registry.yaml): variants, overlays, target hardware and the project's rules."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bimedix.paths import ROOT
from recipes.config import RecipeError

REGISTRY = ROOT / "recipes" / "registry.yaml"


@dataclass(frozen=True)
class Hardware:
    name: str
    cuda: bool
    capabilities: dict[str, Any]


@dataclass(frozen=True)
class Variant:
    name: str
    recipe: Path
    hardware: str


@dataclass(frozen=True)
class Overlay:
    name: str
    file: Path
    hardware: str
    applies_to: tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    attention_targets: tuple[str, ...]
    expert_targets: tuple[str, ...]
    router_targets: tuple[str, ...]
    chat_templates: tuple[str, ...]
    merge_method: str
    packing_attention: dict[str, tuple[str, ...]]
    lora_kernels_off: tuple[str, ...]
    produced_by: dict[str, str]
    path_keys: tuple[str, ...]
    local_prefixes: tuple[str, ...]
    output_keys: tuple[str, ...]
    plugins: tuple[str, ...]
    embedded_samples: tuple[str, ...]
    fsdp2_optimizers: tuple[str, ...]


@dataclass(frozen=True)
class Registry:
    variants: dict[str, Variant]
    overlays: dict[str, Overlay]
    hardware: dict[str, Hardware]
    rules: Rules

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise RecipeError(f"unknown variant {name!r}: expected one of {', '.join(self.variants)}")
        return self.variants[name]

    def overlay(self, name: str) -> Overlay:
        if name not in self.overlays:
            raise RecipeError(f"unknown overlay {name!r}: expected one of {', '.join(self.overlays)}")
        return self.overlays[name]


def _tuple(value: Any) -> tuple:
    return tuple(value or ())


@lru_cache(maxsize=4)
def load_registry(path: Path = REGISTRY) -> Registry:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    try:
        hardware = {
            name: Hardware(name, bool(spec["cuda"]), dict(spec["capabilities"]))
            for name, spec in data["hardware"].items()
        }
        variants = {
            name: Variant(name, ROOT / spec["recipe"], spec["hardware"]) for name, spec in data["variants"].items()
        }
        overlays = {
            name: Overlay(name, ROOT / spec["file"], spec["hardware"], _tuple(spec.get("applies_to")))
            for name, spec in data["overlays"].items()
        }
        r = data["rules"]
        rules = Rules(
            attention_targets=_tuple(r["attention_targets"]),
            expert_targets=_tuple(r["expert_targets"]),
            router_targets=_tuple(r["router_targets"]),
            chat_templates=_tuple(r["chat_templates"]),
            merge_method=str(r["merge_method"]),
            packing_attention={kind: _tuple(v) for kind, v in r["packing_attention"].items()},
            lora_kernels_off=_tuple(r["lora_kernels_off"]),
            produced_by=dict(r["produced_by"]),
            path_keys=_tuple(r["path_keys"]),
            local_prefixes=_tuple(r["local_prefixes"]),
            output_keys=_tuple(r["output_keys"]),
            plugins=_tuple(r["plugins"]),
            embedded_samples=_tuple(r["embedded_samples"]),
            fsdp2_optimizers=_tuple(r["fsdp2_optimizers"]),
        )
    except (KeyError, TypeError) as err:
        raise RecipeError(f"{shown}: missing or malformed entry {err}") from None
    for owner, target in [*((v.name, v.hardware) for v in variants.values()), *((o.name, o.hardware) for o in overlays.values())]:  # fmt: skip
        if target not in hardware:
            raise RecipeError(f"{shown}: {owner}: unknown hardware {target!r} (known: {', '.join(hardware)})")
    for overlay in overlays.values():
        for name in overlay.applies_to:
            if name not in variants:
                raise RecipeError(f"{shown}: overlay {overlay.name}: applies_to names unknown variant {name!r}")
    return Registry(variants, overlays, hardware, rules)
