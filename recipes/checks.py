"""Check a recipe before any GPU hour is spent: Axolotl's own schema for the target hardware,
and the project's rules that the schema does not know (recipes/registry.yaml, `rules`).

Every problem is one line, `file:line: key: what is wrong and what to do`. Axolotl accepts
unknown keys silently (a typo like `lora_rr` trains with the default rank), so the key names
are checked here against Axolotl's own pydantic models, and the nested mappings against
theirs (datasets, fsdp_config, bnb_config_kwargs, and model_config against transformers'
config class of the model type).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bimedix.paths import ROOT
from recipes.config import KeyPath, Recipe, format_key
from recipes.registry import Hardware, Registry

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Problem:
    where: str  # file:line
    key: str  # the key path, e.g. datasets[0].path
    message: str
    source: str = "rule"  # rule | key | path | schema
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        key = f"{self.key}: " if self.key else ""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.where}: {tag}{key}{self.message}"


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# --------------------------------------------------------------------------- key names


def _field_names(model) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
            elif alias is not None and hasattr(alias, "choices"):
                names.update(c for c in alias.choices if isinstance(c, str))
    return names


@lru_cache(maxsize=1)
def axolotl_keys() -> dict[str, frozenset[str]]:
    """Key names the installed Axolotl's schema (0.21.0) knows, at the top level and in its nested models."""
    from axolotl.utils.schemas.config import AxolotlInputConfig
    from axolotl.utils.schemas.datasets import SFTDataset
    from axolotl.utils.schemas.fsdp import FSDPConfig
    from transformers import BitsAndBytesConfig

    bnb = {p for p in inspect.signature(BitsAndBytesConfig.__init__).parameters if p not in ("self", "kwargs")}
    return {
        "top": frozenset(_field_names(AxolotlInputConfig)),
        "dataset": frozenset(_field_names(SFTDataset)),
        "fsdp_config": frozenset(_field_names(FSDPConfig)),
        "bnb_config_kwargs": frozenset(bnb),
    }


@lru_cache(maxsize=8)
def model_config_keys(model_type: str) -> frozenset[str]:
    """The attributes transformers' config class for `model_type` has (model_config overrides them)."""
    from transformers import AutoConfig

    return frozenset(AutoConfig.for_model(model_type).to_dict())


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def base_model_type(data: dict[str, Any]) -> str:
    """The base model's model_type: from its config.json when it is on this machine, else mixtral."""
    base = data.get("base_model")
    if isinstance(base, str):
        local = Path(base) if Path(base).is_absolute() else ROOT / base
        config = local / "config.json"
        if not config.exists() and HUB_ID.match(base):
            try:
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(base, "config.json")
                config = Path(cached) if isinstance(cached, str) else config
            except Exception:  # an unusable cache is the same as no cache here
                pass
        if config.exists():
            try:
                return str(json.loads(config.read_text(encoding="utf-8")).get("model_type") or "mixtral")
            except (OSError, json.JSONDecodeError):
                pass
    return "mixtral"


def key_problems(recipe: Recipe) -> list[Problem]:
    """Unknown keys (typos Axolotl would ignore) and blank values, top level and nested."""
    known = axolotl_keys()
    out: list[Problem] = []
    data = recipe.data

    def unknown(path: KeyPath, names: frozenset[str], what: str) -> None:
        name = str(path[-1])
        if name not in names:
            out.append(Problem(recipe.where(path), format_key(path), f"unknown {what}{_suggest(name, names)}", "key"))

    for key in data:
        unknown((key,), known["top"], "key: Axolotl would ignore it silently")
    for section in ("datasets", "test_datasets"):
        for index, entry in enumerate(data.get(section) or []):
            if isinstance(entry, dict):
                for key in entry:
                    unknown((section, index, key), known["dataset"], "dataset key: Axolotl would ignore it silently")
    if isinstance(data.get("fsdp_config"), dict):
        for key in data["fsdp_config"]:
            unknown(("fsdp_config", key), known["fsdp_config"], "fsdp_config key")
    if isinstance(data.get("bnb_config_kwargs"), dict):
        for key in data["bnb_config_kwargs"]:
            unknown(("bnb_config_kwargs", key), known["bnb_config_kwargs"], "BitsAndBytesConfig argument")
    if isinstance(data.get("model_config"), dict):
        model_type = base_model_type(data)
        names = model_config_keys(model_type)
        for key in data["model_config"]:
            unknown(("model_config", key), names, f"{model_type} config attribute: transformers would ignore it")

    def blanks(node: Any, path: KeyPath) -> Iterator[KeyPath]:
        if node is None:
            yield path
        elif isinstance(node, dict):
            for key, value in node.items():
                yield from blanks(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from blanks(value, (*path, index))

    for path in blanks(data, ()):
        out.append(
            Problem(recipe.where(path), format_key(path), "blank value: give it a value or remove the key", "key")
        )
    return out


# --------------------------------------------------------------------------- Axolotl's schema


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def schema_problems(recipe: Recipe, hardware: Hardware) -> list[Problem]:
    """Axolotl's validate_config with the target's capabilities (offline; no model, no GPU)."""
    import pydantic
    import torch
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    env = {"torch_version": torch.__version__.split("+")[0]}
    collect = _Collect()
    logger = logging.getLogger("axolotl")
    logger.addHandler(collect)
    out: list[Problem] = []
    try:
        validate_config(DictDefault(copy.deepcopy(recipe.data)), capabilities=dict(hardware.capabilities), env_capabilities=env)  # fmt: skip
    except pydantic.ValidationError as err:
        for item in err.errors():
            loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            loc = loc if loc and loc[0] in recipe.data else ()
            message = str(item["msg"]).removeprefix("Value error, ").splitlines()[0]
            out.append(Problem(recipe.where(loc), format_key(loc), f"Axolotl schema: {message}", "schema"))
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        out.append(Problem(recipe.where(()), "", f"Axolotl schema: {message}", "schema"))
    finally:
        logger.removeHandler(collect)
    for message in dict.fromkeys(collect.messages):
        out.append(Problem(recipe.where(()), "", f"Axolotl: {message.splitlines()[0]}", "schema", "warning"))
    return out


# --------------------------------------------------------------------------- project rules


def _deepspeed_stage(value: Any) -> int | None:
    config = value
    if isinstance(value, str):
        path = Path(value) if Path(value).is_absolute() else ROOT / value
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
    if isinstance(config, dict):
        stage = (config.get("zero_optimization") or {}).get("stage")
        return int(stage) if isinstance(stage, int | str) and str(stage).isdigit() else None
    return None


def _normalise(path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.resolve().relative_to(ROOT))
        except ValueError:
            return str(p)
    return str(Path(*p.parts)).removeprefix("./")


def rule_problems(recipe: Recipe, hardware: Hardware, registry: Registry) -> list[Problem]:
    rules = registry.rules
    data = recipe.data
    out: list[Problem] = []

    def problem(path: KeyPath, message: str) -> None:
        out.append(Problem(recipe.where(path), format_key(path), message))

    # Adapter: QLoRA, as BiMediX.
    if data.get("adapter") != "qlora":
        problem(("adapter",), f"expected qlora (BiMediX is a QLoRA fine-tune), got {data.get('adapter')!r}")
    if "lora_target_linear" in data:
        problem(
            ("lora_target_linear",),
            "trains the attention only on transformers 5 (the fused experts are 3-D parameters, not "
            "nn.Linear): remove it and list lora_target_modules and lora_target_parameters",
        )
    modules = data.get("lora_target_modules") or []
    modules = [modules] if isinstance(modules, str) else list(modules)
    missing = [t for t in rules.attention_targets if t not in modules]
    if missing:
        problem(("lora_target_modules",), f"the attention is not fully targeted: add {missing}")
    parameters = data.get("lora_target_parameters") or []
    parameters = [parameters] if isinstance(parameters, str) else list(parameters)
    missing = [t for t in rules.expert_targets if t not in parameters]
    if missing:
        problem(("lora_target_parameters",), f"the experts are not targeted: add {missing}")
    missing = [t for t in rules.router_targets if t not in parameters]
    if missing:
        problem(("lora_target_parameters",), f"the router is not targeted: add {missing}")
    if parameters and data.get("lora_dropout") not in (0, 0.0, None):
        problem(("lora_dropout",), "must be 0 with lora_target_parameters (peft's ParamWrapper has no dropout)")
    if data.get("merge_method") != rules.merge_method:
        problem(
            ("merge_method",),
            f"must be {rules.merge_method}: the default merge (memory_efficient) drops the fused-expert "
            f"LoRA and only logs a warning; got {data.get('merge_method')!r}",
        )
    for kernel in rules.lora_kernels_off:
        if data.get(kernel) is not False:
            reason = "they call CUDA and fail on a CPU" if not hardware.cuda else "the tested path is peft's own"
            problem((kernel,), f"must be false ({reason}); unset, Axolotl switches it on")

    # MoE: the router's auxiliary loss.
    model_config = data.get("model_config") if isinstance(data.get("model_config"), dict) else {}
    if model_config.get("output_router_logits") is not True:
        problem(("model_config",), "set model_config.output_router_logits: true, or the router aux loss is not added")
    if not isinstance(model_config.get("router_aux_loss_coef"), int | float) or model_config["router_aux_loss_coef"] <= 0:  # fmt: skip
        problem(("model_config",), "set model_config.router_aux_loss_coef (BiMediX: 0.02)")
    if hardware.cuda and data.get("adapter") == "qlora" and data.get("quantize_moe_experts") is not True:
        problem(
            ("quantize_moe_experts",),
            "must be true for QLoRA on a GPU: without it the experts stay in bf16 (~90 GB for Mixtral-8x7B)",
        )
    if not hardware.cuda and data.get("quantize_moe_experts"):
        problem(("quantize_moe_experts",), f"needs CUDA; {hardware.name} has none: set it to false")
    if not hardware.cuda and (data.get("fsdp_version") or data.get("fsdp_config")):
        # Axolotl builds FSDP's device mesh as "cuda" (axolotl/utils/distributed.py:361), and accelerate
        # makes an FSDP state only for GPU-like devices (accelerate/state.py:986-1013: MULTI_CPU is not one)
        key = "fsdp_version" if data.get("fsdp_version") else "fsdp_config"
        problem((key,), f"FSDP needs CUDA ({hardware.name} has none): Axolotl builds its device mesh on 'cuda' (axolotl/utils/distributed.py:361); several CPU processes run DDP without an overlay")  # fmt: skip
    if not hardware.cuda and data.get("use_ray"):
        # axolotl/cli/train.py:130 asks Ray for use_gpu=True, which adds GPU: 1 to every worker
        # (ray/air/config.py:231-232): on a cluster without GPUs the workers are never scheduled
        problem(("use_ray",), f"Axolotl's Ray Train asks one GPU per worker (axolotl/cli/train.py:130; {hardware.name} has none): the job would wait forever for GPUs")  # fmt: skip
    out.extend(_checkpointing_problems(recipe, model_config))

    # Data: packing, the project's chat template, the data stage's format.
    if data.get("sample_packing") is not True:
        problem(("sample_packing",), "must be true (packing; see the packing efficiency in recipes/README.md)")
    allowed = rules.packing_attention["cuda" if hardware.cuda else "cpu"]
    if data.get("attn_implementation") not in allowed:
        problem(
            ("attn_implementation",),
            f"on {hardware.name} packed samples stay apart only with {' or '.join(allowed)}, "
            f"got {data.get('attn_implementation')!r}",
        )
    out.extend(_template_problems(recipe, rules.chat_templates))
    for section in ("datasets", "test_datasets"):
        entries = data.get(section)
        if section == "datasets" and not entries:
            problem((section,), "no training data")
        for index, entry in enumerate(entries or []):
            if not isinstance(entry, dict):
                problem((section, index), "expected a mapping")
                continue
            wanted = {"type": "chat_template", "field_messages": "messages", "roles_to_train": ["assistant"]}
            for key, value in wanted.items():
                if entry.get(key) != value:
                    problem((section, index, key), f"expected {value!r} (the data stage's messages JSON lines)")

    # Distributed: refuse what is known not to work.
    # Axolotl 0.21 reads an fsdp_config without fsdp_version as FSDP2
    # (axolotl/utils/schemas/validation.py:1536-1552).
    fsdp_version = str(data.get("fsdp_version") or (data.get("fsdp_config") or {}).get("fsdp_version") or "")
    if data.get("fsdp_config") and not fsdp_version:
        fsdp_version = "2"
    if fsdp_version == "2" and data.get("optimizer") not in rules.fsdp2_optimizers:
        problem(
            ("optimizer",),
            f"{data.get('optimizer')!r} with FSDP2: Axolotl refuses bitsandbytes' 8-bit AdamW with FSDP2 "
            f"(CUDA errors; it names adamw_torch_8bit instead) and the paged variants are the same "
            f"bitsandbytes family: use one of {', '.join(rules.fsdp2_optimizers)}",
        )
    stage = _deepspeed_stage(data.get("deepspeed")) if data.get("deepspeed") else None
    if stage == 3:
        if data.get("sample_packing"):
            problem(
                ("deepspeed",),
                "ZeRO-3 with Mixtral and sample packing is known broken: Axolotl patches Mixtral with "
                "MixtralBlockSparseTop2MLP, which transformers 5 removed (ImportError); use zero2 or fsdp2",
            )
        if data.get("adapter") == "qlora" or data.get("load_in_4bit"):
            problem(
                ("deepspeed",), "QLoRA with ZeRO-3 is known fragile (4-bit weights do not shard); use zero2 or fsdp2"
            )
    return out


def _checkpointing_problems(recipe: Recipe, model_config: dict) -> list[Problem]:
    """Activation checkpointing must be non-reentrant when the router aux loss is on.

    When `use_reentrant` is unset, Axolotl picks it: 0.19 made it true always, 0.21 makes it true
    under DeepSpeed ZeRO-3 and false otherwise (axolotl/utils/config/__init__.py:470-483), and the
    Trainer passes it on to every layer (transformers/trainer.py:1500-1511). A recipe therefore
    says it explicitly. transformers 5 collects Mixtral's router_logits through
    forward hooks; under reentrant checkpointing the first forward runs without grad, so the
    aux loss is added to the loss value but carries no gradient: the router never learns from
    router_aux_loss_coef. Non-reentrant checkpointing (or FSDP's activation_checkpointing, which
    is non-reentrant: axolotl/monkeypatch/accelerate/fsdp2.py:516-533) keeps the graph.
    """
    data = recipe.data
    out = []
    fsdp_checkpointing = bool((data.get("fsdp_config") or {}).get("activation_checkpointing"))
    if data.get("gradient_checkpointing") and fsdp_checkpointing:
        path: KeyPath = ("gradient_checkpointing",)
        out.append(Problem(recipe.where(path), format_key(path), "must be false with fsdp_config.activation_checkpointing (the Trainer refuses both: transformers/trainer.py:876)"))  # fmt: skip
    if model_config.get("output_router_logits") and data.get("gradient_checkpointing"):
        kwargs = data.get("gradient_checkpointing_kwargs")
        reentrant = not isinstance(kwargs, dict) or kwargs.get("use_reentrant") is not False
        if reentrant:
            path = ("gradient_checkpointing_kwargs",) if "gradient_checkpointing_kwargs" in data else ("gradient_checkpointing",)  # fmt: skip
            unset = (
                "reentrant"
                if isinstance(kwargs, dict) and "use_reentrant" in kwargs
                else "left to Axolotl (reentrant under ZeRO-3 in 0.21, everywhere in 0.19)"
            )
            out.append(
                Problem(
                    recipe.where(path),
                    format_key(path),
                    f"checkpointing is {unset}: under reentrant checkpointing the router logits carry no "
                    "gradient, so the router aux loss never reaches the router; set "
                    "gradient_checkpointing_kwargs: {use_reentrant: false}",
                )
            )
    return out


def batch_problems(base: Recipe, base_hardware: Hardware, merged: Recipe, hardware: Hardware) -> list[Problem]:
    """An overlay keeps the global batch (micro x accumulation x GPUs) of the recipe it overlays."""

    def rows(data: dict, hw: Hardware) -> int:
        micro = data.get("micro_batch_size") or 1
        accumulation = data.get("gradient_accumulation_steps") or 1
        gpus = hw.capabilities.get("n_gpu") or 1
        return int(micro) * int(accumulation) * int(gpus)

    written, merged_rows = rows(base.data, base_hardware), rows(merged.data, hardware)
    if merged_rows == written:
        return []
    path: KeyPath = ("gradient_accumulation_steps",)
    return [
        Problem(
            merged.where(path),
            format_key(path),
            f"{hardware.capabilities.get('n_gpu')} GPUs x micro_batch_size {merged.data.get('micro_batch_size')} x "
            f"{merged.data.get('gradient_accumulation_steps')} = {merged_rows} packed rows per step; the recipe's "
            f"global batch is {written}",
        )
    ]


def _template_problems(recipe: Recipe, known: tuple[str, ...]) -> list[Problem]:
    data = recipe.data
    out = []
    hint = f"pin chat_template: jinja and chat_template_jinja: {known[0]}"
    scopes: list[tuple[KeyPath, dict]] = [((), data)]
    for section in ("datasets", "test_datasets"):
        scopes += [((section, i), e) for i, e in enumerate(data.get(section) or []) if isinstance(e, dict)]
    for path, scope in scopes:
        if path and "chat_template" not in scope and "chat_template_jinja" not in scope:
            continue  # a dataset without its own template uses the top-level one
        choice, jinja = scope.get("chat_template"), scope.get("chat_template_jinja")
        if choice != "jinja":
            where = (*path, "chat_template")
            out.append(Problem(recipe.where(where), format_key(where), f"unknown chat template {choice!r}: {hint}"))
            continue
        where = (*path, "chat_template_jinja")
        if not isinstance(jinja, str):
            out.append(Problem(recipe.where(where), format_key(where), f"missing: {hint}"))
        elif "{" in jinja or "\n" in jinja:
            texts = {(ROOT / k).read_text(encoding="utf-8").strip() for k in known if (ROOT / k).exists()}
            if jinja.strip() not in texts:
                out.append(Problem(recipe.where(where), format_key(where), f"an inline template that is not the project's: {hint}"))  # fmt: skip
        elif _normalise(jinja) not in known:
            out.append(Problem(recipe.where(where), format_key(where), f"unknown chat template file {jinja!r}: {hint}"))
    return out


# --------------------------------------------------------------------------- paths


@lru_cache(maxsize=1)
def make_targets() -> frozenset[str]:
    """Targets declared in the top Makefile and the stage fragments."""
    files = [ROOT / "Makefile", *sorted(ROOT.glob("*/*.mk"))]
    names = set()
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", line)
            if match:
                names.add(match.group(1))
    return frozenset(names)


def is_hub_id(value: str, rules) -> bool:
    if value.startswith(rules.local_prefixes) or Path(value).is_absolute() or (ROOT / value).exists():
        return False
    return bool(HUB_ID.match(value))


def path_problems(recipe: Recipe, registry: Registry) -> list[Problem]:
    rules = registry.rules
    data = recipe.data
    out: list[Problem] = []
    named: list[tuple[KeyPath, Any]] = [((key,), data[key]) for key in rules.path_keys if key in data]
    for section in ("datasets", "test_datasets"):
        for index, entry in enumerate(data.get(section) or []):
            if isinstance(entry, dict):
                named += [
                    ((section, index, key), entry[key]) for key in ("path", "chat_template_jinja") if key in entry
                ]
    for path, value in named:
        if not isinstance(value, str):
            continue  # a mapping (an inline deepspeed config) or a value the schema rejects
        if path == ("base_model",) and is_hub_id(value, rules):
            continue  # a hub id: `make train-*` checks that the weights are on this machine
        if path[-1] == "chat_template_jinja" and ("{" in value or "\n" in value):
            continue  # an inline template, checked by the template rule
        target = Path(value) if Path(value).is_absolute() else ROOT / value
        if target.exists():
            continue
        produced = {**rules.produced_by, **recipe.produced}
        producer = next((t for prefix, t in produced.items() if _normalise(value).startswith(prefix)), None)
        where, key = recipe.where(path), format_key(path)
        if producer is None:
            extra = " (Axolotl would read the path text itself as the template)" if path[-1] == "chat_template_jinja" else ""  # fmt: skip
            out.append(Problem(where, key, f"{value}: no such file or folder, and no make target produces it{extra}", "path"))  # fmt: skip
        elif producer not in make_targets():
            out.append(Problem(where, key, f"{value}: not there yet; `make {producer}` produces it, but this checkout defines no `{producer}` target", "path", "warning"))  # fmt: skip
    for key in rules.output_keys:
        value = data.get(key)
        if isinstance(value, str) and not Path(value).is_absolute() and not _normalise(value).startswith("outputs/"):
            out.append(Problem(recipe.where((key,)), key, f"{value}: outputs go under outputs/ (git-ignored), not into the repository", "path"))  # fmt: skip
    return out


# --------------------------------------------------------------------------- together


def check_recipe(recipe: Recipe, hardware: Hardware, registry: Registry, *, schema: bool = True) -> list[Problem]:
    """Every problem of one (resolved) recipe for one target, errors first."""
    problems = key_problems(recipe) + rule_problems(recipe, hardware, registry) + path_problems(recipe, registry)
    if schema:
        problems += schema_problems(recipe, hardware)
    return sorted(problems, key=lambda p: p.severity != "error")
