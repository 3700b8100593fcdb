"""How each backend turns (model, adapter) into an lm-eval model name and model_args.

hf    transformers in this process (lm-eval's "hf"); the adapter through peft. CPU or GPU.
vllm  vLLM (lm-eval's "vllm"), the adapter as a LoRA request. GPU hosts only: vllm is not in .venv.
api   the model served by this project's FastChat stack, through its OpenAI-compatible
      /v1/completions (eval_tasks.api_model, registered as "bimedix-fastchat").
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("hf", "vllm", "api")


class BackendError(ValueError):
    """A backend that cannot run as asked (one line saying why and what to do)."""


@dataclass
class ModelSpec:
    lm_eval_model: str  # the name lm-eval's registry knows
    model_args: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _adapter_config(adapter: str) -> dict:
    path = Path(adapter) / "adapter_config.json"
    if not path.is_file():
        raise BackendError(f"adapter {adapter}: no adapter_config.json (give the folder a LoRA training run saved)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BackendError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None


def check_model(model: str) -> None:
    """A model that names a local folder must exist; anything else is left to the hub (org/name)."""
    path = Path(model)
    looks_local = path.is_absolute() or model.startswith((".", "~")) or path.parts[:1] == ("models",)
    if looks_local and not path.exists():
        hint = " (make tiny-model builds the default one)" if "tiny-bimedix-moe" in model else ""
        raise BackendError(f"model {model}: no such folder{hint}")


def hf_spec(model: str, adapter: str | None, device: str | None, dtype: str = "auto") -> ModelSpec:
    import torch

    args = {"pretrained": model, "dtype": dtype, "device": device or ("cuda" if torch.cuda.is_available() else "cpu")}
    if adapter:
        _adapter_config(adapter)
        args["peft"] = adapter
    return ModelSpec("hf", args)


def vllm_spec(model: str, adapter: str | None, tensor_parallel_size: int = 1) -> ModelSpec:
    args: dict = {
        "pretrained": model,
        "dtype": "auto",
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": 0.9,
        "max_model_len": 4096,
    }
    warnings = []
    if adapter:
        config = _adapter_config(adapter)
        args["lora_local_path"] = adapter
        args["max_lora_rank"] = int(config.get("r", 16))
        if config.get("target_parameters"):
            warnings.append(
                f"adapter {adapter} trains fused MoE parameters ({', '.join(config['target_parameters'])}): check that "
                "your vLLM version applies LoRA to experts and router, or evaluate the merged model "
                "(axolotl merge-lora --merge-method=legacy) with BACKEND=vllm and no ADAPTER"
            )
    if importlib.util.find_spec("vllm") is None:
        raise BackendError(
            "backend vllm: the vllm package is not installed here (it needs a CUDA GPU host); on one, `pip install vllm` "
            "into the environment and rerun, or use BACKEND=hf"
        )
    return ModelSpec("vllm", args, warnings)


def api_spec(model: str, base_url: str, served_name: str, tokenizer: str | None = None) -> ModelSpec:
    from eval_tasks import api_model  # registers "bimedix-fastchat" with lm-eval

    args = {
        "base_url": base_url.rstrip("/") + "/completions"
        if not base_url.rstrip("/").endswith("/completions")
        else base_url,
        "model": served_name,
        "tokenizer": tokenizer or model,
        "tokenizer_backend": "huggingface",
        "tokenized_requests": False,
        "num_concurrent": 1,
        "max_retries": 3,
    }
    return ModelSpec(api_model.MODEL_NAME, args)
