"""Resolve a variant's recipe (overlay, base model, data and output folders), check it, and run
the real `axolotl train` / `axolotl merge-lora` on it.

The resolved recipe Axolotl runs is written beside the outputs (`outputs/<variant>/axolotl.yaml`),
and Axolotl's output is copied to `outputs/<variant>/train.log` (or `merge.log`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bimedix.paths import ROOT
from recipes.checks import check_recipe, errors, is_hub_id
from recipes.config import Recipe, RecipeError, dump, load, merge, override, parse_assignment, rel
from recipes.datacheck import check_file
from recipes.registry import Hardware, Registry
from recipes.weights import locate

LAUNCHERS = ("accelerate", "torchrun", "python")
# Axolotl reports usage to a telemetry service unless told not to; without network the
# process then hangs after training while it retries (measured: >10 minutes).
AXOLOTL_ENV = {"AXOLOTL_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1"}
RAY_PIN = "ray[train]==2.60.0"


class LaunchError(RuntimeError):
    """Something to fix before Axolotl can run; the message is one line."""


@dataclass
class RunOptions:
    variant: str
    base_model: str = ""  # empty: the recipe's base_model
    data_dir: str = ""  # empty: the recipe's paths (data/...)
    output_root: str = ""  # empty: the recipe's output folders (outputs/<variant>/...)
    overlay: str = ""
    sets: list[str] = field(default_factory=list)  # key=value (YAML value)
    unsets: list[str] = field(default_factory=list)  # keys to remove


@dataclass
class Resolved:
    recipe: Recipe
    hardware: Hardware
    run_dir: Path
    variant: str


def _path_value(path: Path) -> str:
    """How a path is written into the resolved recipe: relative to the root when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path.resolve())


def resolve(options: RunOptions, registry: Registry) -> Resolved:
    variant = registry.variant(options.variant)
    recipe = load(variant.recipe)
    hardware = registry.hardware[variant.hardware]
    if options.overlay:
        overlay = registry.overlay(options.overlay)
        recipe = merge(recipe, load(overlay.file))
        hardware = registry.hardware[overlay.hardware]
    if options.base_model:
        override(recipe, "base_model", options.base_model, "BASE_MODEL")
    if options.data_dir:
        data_dir = Path(options.data_dir)
        recipe.produced[_path_value(ROOT / data_dir / "processed") + "/"] = "data"
        for section in ("datasets", "test_datasets"):
            for entry in recipe.data.get(section) or []:
                path = entry.get("path") if isinstance(entry, dict) else None
                if isinstance(path, str) and Path(path).parts[:1] == ("data",):
                    entry["path"] = _path_value(ROOT / data_dir / Path(*Path(path).parts[1:]))
    if options.output_root:
        run_dir = ROOT / options.output_root / options.variant
        override(recipe, "output_dir", _path_value(run_dir / "adapter"), "TRAIN_OUTPUT")
        override(recipe, "dataset_prepared_path", _path_value(run_dir / "prepared"), "TRAIN_OUTPUT")
    for assignment in options.sets:
        key, value = parse_assignment(assignment)
        override(recipe, key, value, f"--set {key}")
    for key in options.unsets:
        if key not in recipe.data:
            raise RecipeError(f"--unset {key}: the recipe has no such key")
        del recipe.data[key]
    output_dir = recipe.data.get("output_dir")
    if not isinstance(output_dir, str):
        raise RecipeError(f"{recipe.sources[0]}: output_dir: missing")
    run_dir = (ROOT / output_dir).parent
    return Resolved(recipe, hardware, run_dir, options.variant)


def check(resolved: Resolved, registry: Registry) -> None:
    """Print warnings; raise LaunchError listing every error (one per line)."""
    problems = check_recipe(resolved.recipe, resolved.hardware, registry)
    for problem in problems:
        if problem.severity == "warning":
            print(problem, file=sys.stderr)
    bad = errors(problems)
    if bad:
        raise LaunchError("\n".join(str(p) for p in bad))


def base_weights(resolved: Resolved, registry: Registry) -> Path:
    base = resolved.recipe.data["base_model"]
    return locate(base, resolved.variant, local=not is_hub_id(base, registry.rules))


def data_files(recipe: Recipe) -> list[Path]:
    files = []
    for section in ("datasets", "test_datasets"):
        for entry in recipe.data.get(section) or []:
            path = Path(entry["path"])
            files.append(path if path.is_absolute() else ROOT / path)
    return files


def check_data(recipe: Recipe, variant: str) -> list[Path]:
    files = data_files(recipe)
    problems = []
    for path in files:
        if not path.exists():
            problems.append(f"{rel(path)}: no such file; run `make data` (or pass DATA_DIR=<folder with processed/{variant}/>)")  # fmt: skip
            continue
        problems += check_file(path)[1]
    if problems:
        raise LaunchError("\n".join(problems))
    return files


def refresh_prepared(recipe: Recipe, files: list[Path]) -> None:
    """Axolotl reuses a prepared (tokenized) dataset when the recipe's dataset entries are
    unchanged, even when the files' content changed: clear it when the data's sha256 differs."""
    prepared = recipe.data.get("dataset_prepared_path")
    if not isinstance(prepared, str):
        return
    folder = ROOT / prepared
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode())
        with path.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    stamp = folder / "bimedix-data.sha256"
    if folder.exists() and (not stamp.exists() or stamp.read_text().strip() != digest.hexdigest()):
        print(f"the data changed since {rel(folder)} was prepared: tokenizing again", flush=True)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest.hexdigest() + "\n")


def axolotl_command(*args: str) -> list[str]:
    """The venv's `axolotl` script (its bin folder goes on PATH: Axolotl execs `accelerate`)."""
    return [str(Path(sys.executable).parent / "axolotl"), *args]


def train_command(config: Path, launcher: str = "accelerate", launcher_args: str = "") -> list[str]:
    if launcher not in LAUNCHERS:
        raise LaunchError(f"unknown launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    command = axolotl_command("train", _path_value(config), "--launcher", launcher)
    extra = shlex.split(launcher_args)
    return command + (["--", *extra] if extra else [])


def merge_command(config: Path, adapter: Path, run_dir: Path, method: str) -> list[str]:
    return axolotl_command(
        "merge-lora",
        _path_value(config),
        "--lora-model-dir",
        _path_value(adapter),
        "--output-dir",
        _path_value(run_dir),
        "--merge-method",
        method,
    )


def run_logged(command: list[str], log: Path) -> tuple[int, str]:
    """Run from the repository root with Axolotl's environment; stream and keep the output."""
    env = {**os.environ, **AXOLOTL_ENV}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(ROOT)
    log.parent.mkdir(parents=True, exist_ok=True)
    print("+ " + shlex.join(command), flush=True)
    kept: list[str] = []
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sink.write(line)
            kept.append(line)
        code = process.wait()
    sys.stdout.flush()
    return code, "".join(kept)


def train(options: RunOptions, registry: Registry, *, launcher: str, launcher_args: str, dry_run: bool) -> Path:
    """Check everything, then `axolotl train`. Returns the adapter folder."""
    resolved = resolve(options, registry)
    check(resolved, registry)
    recipe = resolved.recipe
    if recipe.data.get("use_ray") and importlib.util.find_spec("ray") is None:
        raise LaunchError(f'OVERLAY=ray needs Ray Train, which the locked environment lacks: pip install "{RAY_PIN}"')
    base_weights(resolved, registry)
    files = check_data(recipe, options.variant)
    config = resolved.run_dir / "axolotl.yaml"
    command = train_command(config, launcher, launcher_args)
    if dry_run:
        print("+ " + shlex.join(command))
        return ROOT / recipe.data["output_dir"]
    refresh_prepared(recipe, files)
    dump(recipe, config, f"Resolved by `python -m recipes train {options.variant}` from {', '.join(recipe.sources)}.\nEdit the recipe, not this file.")  # fmt: skip
    code, _ = run_logged(command, resolved.run_dir / "train.log")
    if code != 0:
        raise LaunchError(f"axolotl train failed (exit {code}); its output is in {rel(resolved.run_dir / 'train.log')}")
    adapter = ROOT / recipe.data["output_dir"]
    if not (adapter / "adapter_model.safetensors").exists():
        raise LaunchError(f"axolotl train ended without writing {rel(adapter / 'adapter_model.safetensors')}")
    print(f"adapter: {rel(adapter)}")
    return adapter


def merge_adapter(options: RunOptions, registry: Registry, *, adapter_dir: str = "") -> Path:
    """`axolotl merge-lora --merge-method legacy` (keeps the expert and router LoRA). Returns the merged folder."""
    resolved = resolve(options, registry)
    recipe = resolved.recipe
    adapter = ROOT / (adapter_dir or recipe.data["output_dir"])
    if not (adapter / "adapter_config.json").exists():
        raise LaunchError(f"no adapter in {rel(adapter)}: run `make train-{options.variant}` first, or pass ADAPTER_DIR=<folder>")  # fmt: skip
    method = recipe.data.get("merge_method")
    if method != registry.rules.merge_method:
        raise LaunchError(f"{resolved.recipe.where(('merge_method',))}: merge_method must be {registry.rules.merge_method}, got {method!r} (the default drops the expert LoRA)")  # fmt: skip
    base_weights(resolved, registry)
    merged = resolved.run_dir / "merged"
    if merged.exists():
        shutil.rmtree(merged)
    config = resolved.run_dir / "axolotl-merge.yaml"
    dump(recipe, config, f"Resolved by `python -m recipes merge {options.variant}` from {', '.join(recipe.sources)}.")
    command = merge_command(config, adapter, resolved.run_dir, method)
    code, output = run_logged(command, resolved.run_dir / "merge.log")
    if code != 0:
        raise LaunchError(f"axolotl merge-lora failed (exit {code}); its output is in {rel(resolved.run_dir / 'merge.log')}")  # fmt: skip
    if "MERGE INCOMPLETE" in output:
        raise LaunchError(f"axolotl merge-lora dropped part of the adapter (MERGE INCOMPLETE in {rel(resolved.run_dir / 'merge.log')})")  # fmt: skip
    if not (merged / "config.json").exists() or not any(merged.glob("*.safetensors")):
        raise LaunchError(f"axolotl merge-lora ended without a model in {rel(merged)}")
    print(f"merged model: {rel(merged)}")
    return merged
