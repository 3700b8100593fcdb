"""Are the base model's weights on this machine? Checked before training starts, so that a
missing 94 GB download is one line saying how to provide it, not a traceback an hour in."""

from __future__ import annotations

import json
from pathlib import Path

from bimedix.paths import ROOT
from recipes.config import rel

WEIGHT_SUFFIXES = (".safetensors", ".bin")


class WeightsError(RuntimeError):
    """The weights are missing or incomplete; the message says how to provide them."""


def _missing_files(folder: Path) -> list[str]:
    """What a loadable checkpoint folder lacks: config.json, the weights, shards its index names."""
    missing = [] if (folder / "config.json").exists() else ["config.json"]
    for index in sorted(folder.glob("*.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, json.JSONDecodeError, KeyError, AttributeError):
            return [*missing, f"{index.name} (unreadable)"]
        return missing + sorted(s for s in shards if not (folder / s).exists())
    if not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
        missing.append("weights (*.safetensors)")
    return missing


def how_to_provide(base_model: str, variant: str) -> str:
    name = base_model.rstrip("/").split("/")[-1]
    return (
        f"download them with `hf download {base_model} --local-dir models/{name}` and run "
        f"`make train-{variant} BASE_MODEL=models/{name}` (a local folder), or `hf download {base_model}` "
        f"into the Hugging Face cache and run `make train-{variant}` (the hub id)"
    )


def locate(base_model: str, variant: str, *, local: bool) -> Path:
    """The folder holding base_model's weights, or WeightsError with how to provide them.

    `local` says base_model is a path (else a hub id, looked up in the Hugging Face cache only:
    nothing is downloaded here).
    """
    if local:
        folder = Path(base_model) if Path(base_model).is_absolute() else ROOT / base_model
        if not folder.is_dir():
            hint = "build it with `make tiny-model`" if "tiny-bimedix-moe" in base_model else "pass BASE_MODEL=<folder>"
            raise WeightsError(f"base model {rel(folder)}: no such folder; {hint}")
        missing = _missing_files(folder)
        if missing:
            raise WeightsError(f"base model {rel(folder)}: incomplete, missing {', '.join(missing)}")
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(base_model, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise WeightsError(f"base model weights for {base_model} are not on this machine: {how_to_provide(base_model, variant)}") from None  # fmt: skip
    missing = _missing_files(folder)
    if missing:
        raise WeightsError(
            f"base model {base_model}: the cached copy is incomplete (missing {', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}): {how_to_provide(base_model, variant)}"
        )
    return folder
