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

from bimedix.files import sha256_file
from bimedix.paths import ROOT
from recipes.checks import check_recipe, errors, is_hub_id
from recipes.config import Recipe, RecipeError, dump, load, merge, override, parse_assignment, rel
from recipes.datacheck import check_file
from recipes.provenance import read_provenance
from recipes.registry import Hardware, Registry
from recipes.weights import locate
from recipes.world import (
    BatchPlan,
    WorldError,
    WorldPlan,
    keep_global_batch,
    launcher_options,
    plan_world,
    planned_env,
    threads_per_process,
    usable_cores,
    whole,
)

LAUNCHERS = ("accelerate", "torchrun", "python")
# Axolotl reports usage to a telemetry service unless told not to; without network the
# process then hangs after training while it retries (measured: >10 minutes).
AXOLOTL_ENV = {"AXOLOTL_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1"}


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
    allow_sample_data: bool = False  # let a GPU recipe train on data built only from the embedded samples
    cpu_threads: int = 0  # CPU threads per training process; 0: on a CPU target, the cores shared out among them


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
    plugins = recipe.data.get("plugins") or []
    missing = [name for name in registry.rules.plugins if name not in plugins]
    if missing:  # the recipes name them; a recipe of the user's that does not gets them here
        recipe.data["plugins"] = [*plugins, *missing]
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


def check_data(recipe: Recipe, variant: str) -> dict[Path, int]:
    """Every data file the recipe names, checked line by line: {file: rows}."""
    rows: dict[Path, int] = {}
    problems = []
    for path in data_files(recipe):
        if not path.exists():
            problems.append(f"{rel(path)}: no such file; run `make data` first (training never builds data), or pass DATA_DIR=<folder with processed/{variant}/>")  # fmt: skip
            continue
        count, found = check_file(path)
        rows[path] = count
        problems += found
    if problems:
        raise LaunchError("\n".join(problems))
    return rows


def data_provenance(
    rows: dict[Path, int], digests: dict[Path, str], hardware: Hardware, registry: Registry, *, allow_sample_data: bool
) -> list[str]:
    """One line per data file: its rows and sha256, and the mix and manifest it was built from.

    Raises LaunchError when a file no longer matches its manifest, and, on a GPU target, when
    the data was built only from the embedded samples and `allow_sample_data` is not set."""
    lines, samples, stale = [], [], []
    for path, count in rows.items():
        try:
            provenance = read_provenance(path)
        except ValueError as err:
            raise LaunchError(str(err)) from None
        line = f"data: {rel(path)}: {count:,} rows, sha256 {digests[path]}"
        if provenance is None:
            lines.append(f"{line}; no manifest.json beside it (not built by data_prep): its sources are unknown")
            continue
        if provenance.recorded_sha256 and provenance.recorded_sha256 != digests[path]:
            stale.append(
                f"{rel(path)}: sha256 {digests[path]} is not the {provenance.recorded_sha256} its "
                f"{rel(provenance.manifest)} records: the file changed after data_prep wrote it; run `make data` "
                f"again (or remove the stale manifest.json to train on the file as it is)"
            )
        only_samples = provenance.only_from(registry.rules.embedded_samples)
        if only_samples:
            samples.append(path)
        line += (
            f"; built by data_prep from the mix {provenance.mix or '(not recorded)'} "
            f"(sha256 {provenance.mix_sha256 or 'not recorded'}), {len(provenance.inputs)} input files"
            f"{' (the embedded samples only)' if only_samples else ''}; manifest {rel(provenance.manifest)} "
            f"(sha256 {provenance.manifest_sha256})"
        )
        lines.append(line)
    if stale:
        raise LaunchError("\n".join(stale))
    if samples and hardware.cuda and not allow_sample_data:
        folders = ", ".join(registry.rules.embedded_samples)
        raise LaunchError(
            f"{rel(samples[0])}: built only from the embedded samples ({folders}, toy data) by the default "
            f"`make data`: build the real data with `make data MIX=<your mix>`, or pass ALLOW_SAMPLE_DATA=1 "
            f"(--allow-sample-data) to train this {hardware.name} recipe on the samples anyway"
        )
    return lines


def refresh_prepared(recipe: Recipe, files: list[Path], digests: dict[Path, str] | None = None) -> None:
    """Axolotl reuses a prepared (tokenized) dataset when the recipe's dataset entries are
    unchanged, even when the files' content changed: clear it when the data's sha256 differs."""
    prepared = recipe.data.get("dataset_prepared_path")
    if not isinstance(prepared, str):
        return
    folder = ROOT / prepared
    digests = digests or {}
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode())
        digest.update((digests.get(path) or sha256_file(path)).encode())
    stamp = folder / "bimedix-data.sha256"
    if folder.exists() and (not stamp.exists() or stamp.read_text().strip() != digest.hexdigest()):
        print(f"the data changed since {rel(folder)} was prepared: tokenizing again", flush=True)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest.hexdigest() + "\n")


def axolotl_command(*args: str) -> list[str]:
    """The venv's `axolotl` script (its bin folder goes on PATH: Axolotl execs `accelerate`)."""
    return [str(Path(sys.executable).parent / "axolotl"), *args]


def train_command(config: Path, launcher: str = "accelerate", launcher_args: str = "", threads: int = 0) -> list[str]:
    """`axolotl train CONFIG --launcher L -- ARGS`; with `threads`, accelerate is told the CPU threads
    per process explicitly (its own default is OMP_NUM_THREADS, else 1), unless ARGS already say."""
    if launcher not in LAUNCHERS:
        raise LaunchError(f"unknown launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    command = axolotl_command("train", _path_value(config), "--launcher", launcher)
    extra = shlex.split(launcher_args)
    if threads and launcher == "accelerate" and "num_cpu_threads_per_process" not in launcher_options(extra):
        extra += ["--num_cpu_threads_per_process", str(threads)]
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


def run_logged(command: list[str], log: Path, extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run from the repository root with Axolotl's environment; stream and keep the output."""
    env = {**os.environ, **AXOLOTL_ENV, **(extra_env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(ROOT)
    log.parent.mkdir(parents=True, exist_ok=True)
    print("+ " + shlex.join(command), flush=True)
    kept: list[str] = []
    with log.open("w", encoding="utf-8", buffering=1) as sink:  # line-buffered: the log is current while it runs
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            sink.write(line)
            kept.append(line)
        code = process.wait()
    sys.stdout.flush()
    return code, "".join(kept)


def overlays_for(registry: Registry, variant: str, processes: int) -> list[str]:
    """`OVERLAY=<name>` of each overlay of `variant` written for exactly `processes` GPUs."""
    return [
        f"OVERLAY={o.name}" for o in registry.overlays.values()
        if variant in o.applies_to and registry.hardware[o.hardware].capabilities.get("n_gpu") == processes
    ]  # fmt: skip


def plan_batch(
    resolved: Resolved, registry: Registry, launcher: str, launcher_args: str, device_count=None
) -> tuple[WorldPlan, BatchPlan]:
    """The process count of this launch and the gradient accumulation that keeps the recipe's
    global batch on it (written into the resolved recipe when it changes)."""
    recipe = resolved.recipe
    if launcher not in LAUNCHERS:
        raise LaunchError(f"unknown launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    written_for = int(resolved.hardware.capabilities.get("n_gpu") or 1)
    try:
        extra = {"device_count": device_count} if device_count is not None else {}
        world = plan_world(launcher, shlex.split(launcher_args), recipe.data, **extra)
        gpu_counts = sorted({hw.capabilities.get("n_gpu") or 1 for hw in registry.hardware.values()})
        overlays = {n: overlays_for(registry, resolved.variant, n) for n in gpu_counts}
        named = [f"{' or '.join(v)} for {n} GPUs" for n, v in sorted(overlays.items()) if v]
        batch = keep_global_batch(recipe.data, written_for, world.processes, "; ".join(named))
    except WorldError as err:
        raise LaunchError(str(err)) from None
    if batch.changed:
        override(recipe, "gradient_accumulation_steps", batch.accumulation, f"{world.processes} processes")
    return world, batch


def cpu_processes(hardware: Hardware, launcher: str, world: WorldPlan) -> tuple[tuple[str, ...], dict[str, str]]:
    """The launcher arguments and environment of several training processes on a CPU target (gloo).

    - `accelerate launch --num_processes 2` without `--multi_gpu` starts ONE process on a machine
      without GPUs (accelerate/commands/launch.py:1403: only `--multi_gpu` reaches the torchrun-style
      launcher, else `simple_launcher`); `--multi_gpu` is added.
    - Each rank must see ACCELERATE_USE_CPU=true: transformers' TrainingArguments then builds its
      PartialState with cpu=True (transformers/training_args.py:1840), which accelerate makes a
      MULTI_CPU (gloo) state (accelerate/state.py, `_prepare_backend`). Without it the state is
      NOT distributed: the Trainer wraps no DDP, every rank trains alone on ALL the data, and
      only a warning says so ("parallel_mode != ParallelMode.DISTRIBUTED").
    The plugin checks the result in every rank (recipes/axolotl_plugin.py, `check_trainer_world`)."""
    args = world.launcher_args
    if hardware.cuda or world.processes < 2 or launcher == "python":
        return args, {}
    if launcher == "accelerate" and "multi_gpu" not in launcher_options(args):
        args = ("--multi_gpu", *args)
    return args, {"ACCELERATE_USE_CPU": "true"}


def rendezvous_args(launcher: str, args: tuple[str, ...], variant: str) -> tuple[str, ...]:
    """torchrun with --rdzv_endpoint and no --rdzv_id: Axolotl adds a RANDOM id of its own
    (axolotl/cli/utils/train.py:36-41), a different one on every node, so the nodes of a
    multi-node launch never meet and wait until the rendezvous times out. Every node computes this
    same id instead (pass --rdzv_id to choose another, e.g. for two jobs on one endpoint)."""
    options = launcher_options(args)
    if launcher != "torchrun" or "rdzv_endpoint" not in options or "rdzv_id" in options:
        return args
    return (*args, "--rdzv_id", f"bimedix-{variant}")


def ray_driver(recipe: dict, launcher: str, launcher_args: str) -> tuple[str, str]:
    """With use_ray, Axolotl must run as ONE driver process that asks Ray for the workers. Axolotl
    skips its launcher only for `--use-ray` on its command line (axolotl/cli/main.py:139), not for
    use_ray in the config: through `accelerate launch` on an 8-GPU host it would start 8 drivers,
    each asking Ray for 8 GPU workers. The launcher becomes python; launcher arguments, which
    nothing would read, are refused."""
    if not recipe.get("use_ray"):
        return launcher, launcher_args
    if launcher_args.strip():
        raise LaunchError(
            f"use_ray: Ray Train starts the workers (ray_num_workers), so LAUNCHER_ARGS {launcher_args!r} would be ignored: leave them empty"
        )
    if launcher != "python":
        print(f"Ray Train: axolotl runs as one driver process (launcher python, not {launcher}); Ray starts the workers", flush=True)  # fmt: skip
    return "python", ""


def train(options: RunOptions, registry: Registry, *, launcher: str, launcher_args: str, dry_run: bool) -> Path:
    """Check everything, then `axolotl train`. Returns the adapter folder."""
    resolved = resolve(options, registry)
    check(resolved, registry)
    recipe = resolved.recipe
    if recipe.data.get("use_ray") and importlib.util.find_spec("ray") is None:
        raise LaunchError(
            "OVERLAY=ray needs Ray Train, which requirements/main.lock holds but this environment lacks: run `make env`"
        )
    launcher, launcher_args = ray_driver(recipe.data, launcher, launcher_args)
    base_weights(resolved, registry)
    rows = check_data(recipe, options.variant)
    digests = {path: sha256_file(path) for path in rows}
    for line in data_provenance(
        rows, digests, resolved.hardware, registry, allow_sample_data=options.allow_sample_data
    ):
        print(line, flush=True)
    world, batch = plan_batch(resolved, registry, launcher, launcher_args)
    print(batch.describe(world.how), flush=True)
    threads = 0
    try:
        requested = options.cpu_threads
        named = launcher_options(world.launcher_args).get("num_cpu_threads_per_process")
        if launcher == "accelerate" and named:
            requested = whole(named, "accelerate --num_cpu_threads_per_process")
        if requested or not resolved.hardware.cuda:
            threads = threads_per_process(world, requested)
    except WorldError as err:
        raise LaunchError(str(err)) from None
    if threads:
        machine = f"{world.per_machine} process{'es' if world.per_machine != 1 else ''} on this machine"
        how = "as asked" if requested else f"this machine's {usable_cores()} usable cores shared by {machine}"
        print(f"CPU threads: {threads} per training process ({how})", flush=True)
    if world.processes > 1 and not options.overlay and not recipe.data.get("use_ray"):
        fitting = overlays_for(registry, options.variant, world.processes)
        hint = f"; {' or '.join(fitting)} (written for {world.processes} GPUs) shards them" if fitting else ""
        print(f"note: {world.processes} processes without an overlay: plain DDP, every GPU holds the whole model and optimizer{hint}", flush=True)  # fmt: skip
    launcher_args, env = cpu_processes(resolved.hardware, launcher, world)
    launcher_args = rendezvous_args(launcher, launcher_args, options.variant)
    config = resolved.run_dir / "axolotl.yaml"
    command = train_command(config, launcher, shlex.join(launcher_args), threads)
    dump(recipe, config, f"Resolved by `python -m recipes train {options.variant}` from {', '.join(recipe.sources)}.\nEdit the recipe, not this file.")  # fmt: skip
    if dry_run:
        print(f"dry run: wrote {rel(config)}; would run:")
        print("+ " + shlex.join(command))
        return ROOT / recipe.data["output_dir"]
    refresh_prepared(recipe, list(rows), digests)
    code, _ = run_logged(command, resolved.run_dir / "train.log", planned_env(world, recipe.data, threads) | env)
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
