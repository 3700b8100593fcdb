"""How many training processes a launch starts, and the gradient accumulation that keeps the
recipe's global batch on that many.

Axolotl multiplies the batch by the number of processes (WORLD_SIZE;
axolotl/utils/config/__init__.py:254-263) and never changes gradient_accumulation_steps, so the
one-GPU recipe (1 x 16 packed rows) started by `accelerate launch` on an 8-GPU host (accelerate
starts one process per visible GPU when no config says otherwise,
accelerate/commands/launch.py, `_validate_launch_command`) would train with 128 rows per step:
a different run, without a word. Here the process count is worked out before the launch, from
the launcher's own arguments (accelerate: --num_processes, else its config file, else the visible
GPUs, and then passed to it explicitly; torchrun: --nnodes x --nproc_per_node; ray:
ray_num_workers), and gradient_accumulation_steps is set so that
micro_batch_size x gradient_accumulation_steps x processes equals the recipe's global batch on
the hardware it is written for. When no whole number does, the launch is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Exported to the training processes; recipes/axolotl_plugin.py compares it with WORLD_SIZE.
WORLD_SIZE_ENV = "BIMEDIX_WORLD_SIZE"
# Exported too: the CPU threads each training process was given; the plugin reports what torch uses.
THREADS_ENV = "BIMEDIX_CPU_THREADS"


class WorldError(ValueError):
    """The process count cannot be known, or cannot keep the global batch; one line."""


@dataclass(frozen=True)
class WorldPlan:
    processes: int
    how: str  # where the count comes from, as the user should read it
    launcher_args: tuple[str, ...]  # the launcher's arguments to use (accelerate: with --num_processes)
    local_processes: int = 0  # processes on this machine (0: all of them), which share its CPU cores

    @property
    def per_machine(self) -> int:
        return self.local_processes or self.processes


def launcher_options(args: Sequence[str]) -> dict[str, str]:
    """`--name value` and `--name=value`, names with `-` or `_`, as {name_with_underscores: value}."""
    out: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            name = name.replace("-", "_")
            if not sep:
                following = args[index + 1] if index + 1 < len(args) else ""
                if following and not following.startswith("--"):
                    value = following
                    index += 1
                else:
                    value = "true"  # a flag
            out[name] = value
        index += 1
    return out


def whole(value: str, option: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise WorldError(f"{option} {value!r}: pass a number, so that the global batch can be kept") from None
    if number < 1:
        raise WorldError(f"{option} {value!r}: expected at least 1")
    return number


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _accelerate_config(path: str | None) -> tuple[Path | None, dict[str, Any]]:
    if path:
        config = Path(path)
        if not config.is_file():
            raise WorldError(f"accelerate --config_file {path}: no such file")
    else:
        from accelerate.commands.config.config_args import default_config_file

        config = Path(default_config_file)
        if not config.is_file():
            return None, {}
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise WorldError(f"{config}: cannot read the accelerate config: {err}") from None
    return config, data if isinstance(data, dict) else {}


def plan_world(
    launcher: str,
    launcher_args: Sequence[str],
    recipe: dict[str, Any],
    device_count: Callable[[], int] = cuda_device_count,
) -> WorldPlan:
    """The number of training processes this launch starts, and the launcher arguments to use."""
    args = tuple(launcher_args)
    options = launcher_options(args)
    if recipe.get("use_ray"):
        workers = recipe.get("ray_num_workers") or 1
        return WorldPlan(int(workers), f"ray_num_workers {workers}", args)
    if launcher == "python":
        return WorldPlan(1, "the python launcher runs one process", args)
    if launcher == "torchrun":
        nnodes = options.get("nnodes", "1")
        low, _, high = nnodes.partition(":")
        if high and high != low:
            raise WorldError(f"torchrun --nnodes {nnodes}: an elastic range leaves the process count open; pass one number")  # fmt: skip
        nodes = whole(low, "torchrun --nnodes")
        per_node_text = options.get("nproc_per_node", "1")
        if per_node_text in ("gpu", "auto"):
            per_node = device_count()
            if per_node < 1:
                raise WorldError(f"torchrun --nproc_per_node {per_node_text}: this machine has no GPU")
        else:
            per_node = whole(per_node_text, "torchrun --nproc_per_node")
        return WorldPlan(nodes * per_node, f"torchrun --nnodes {nodes} x --nproc_per_node {per_node}", args, per_node)
    if launcher != "accelerate":
        raise WorldError(f"unknown launcher {launcher!r}")
    if "num_processes" in options:
        count = whole(options["num_processes"], "accelerate --num_processes")
        machines = whole(options.get("num_machines", "1"), "accelerate --num_machines")
        return WorldPlan(count, f"accelerate --num_processes {count}", args, max(count // machines, 1))
    if "num_machines" in options:
        raise WorldError("accelerate --num_machines without --num_processes: pass --num_processes (all machines together)")  # fmt: skip
    config, data = _accelerate_config(options.get("config_file"))
    if config is not None and isinstance(data.get("num_processes"), int) and data["num_processes"] >= 1:
        count = data["num_processes"]
        how = f"num_processes {count} in the accelerate config {config}"
    else:
        count = max(device_count(), 1)
        how = f"{count} visible GPU{'s' if count != 1 else ''}" if device_count() else "no GPU: one process"
    return WorldPlan(count, how, ("--num_processes", str(count), *args))


@dataclass(frozen=True)
class BatchPlan:
    global_batch: int  # packed rows per optimizer step, as the recipe is written
    micro_batch_size: int
    accumulation: int  # gradient_accumulation_steps to use
    written_accumulation: int  # as the recipe writes it
    written_processes: int  # the processes the recipe is written for (its hardware's GPUs)
    processes: int

    @property
    def changed(self) -> bool:
        return self.accumulation != self.written_accumulation

    def describe(self, how: str) -> str:
        line = (
            f"global batch: {self.global_batch} packed rows per optimizer step = micro_batch_size "
            f"{self.micro_batch_size} x gradient_accumulation_steps {self.accumulation} x {self.processes} "
            f"process{'es' if self.processes != 1 else ''} ({how})"
        )
        if self.changed:
            line += (
                f"; the recipe is written for {self.written_processes} with gradient_accumulation_steps "
                f"{self.written_accumulation}: set to {self.accumulation}"
            )
        return line


def keep_global_batch(
    recipe: dict[str, Any], written_processes: int, processes: int, suggestions: str = ""
) -> BatchPlan:
    """The gradient accumulation that keeps micro x accumulation x processes at the recipe's value."""
    micro = int(recipe.get("micro_batch_size") or 1)
    written = int(recipe.get("gradient_accumulation_steps") or 1)
    global_batch = micro * written * written_processes
    per_step = micro * processes
    if global_batch % per_step:
        fits = [n for n in range(1, global_batch // micro + 1) if (global_batch // micro) % n == 0]
        hint = f" ({suggestions})" if suggestions else ""
        raise WorldError(
            f"{processes} processes cannot keep the recipe's global batch of {global_batch} packed rows "
            f"(micro_batch_size {micro} x {processes} does not divide it): start {_or(fits)} processes{hint}"
        )
    return BatchPlan(global_batch, micro, global_batch // per_step, written, written_processes, processes)


def _or(numbers: list[int]) -> str:
    text = [str(n) for n in numbers]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " or " + text[-1]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: what taskset or a container allows)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_process(plan: WorldPlan, requested: int = 0, cores: int | None = None) -> int:
    """CPU threads for each training process: `requested`, or this machine's cores shared out among
    the processes it runs (at least 1). `accelerate launch` without `--cpu` would start every process
    with OMP_NUM_THREADS=1 (accelerate/commands/launch.py, `num_cpu_threads_per_process`): one core."""
    if requested < 0:
        raise WorldError(f"CPU threads {requested}: expected 0 (all cores) or a positive number")
    if requested:
        return requested
    return max((usable_cores() if cores is None else cores) // plan.per_machine, 1)


def planned_env(plan: WorldPlan, recipe: dict[str, Any], threads: int = 0) -> dict[str, str]:
    """What the training processes should see: the planned count, checked by the plugin (Ray starts
    its workers itself, ray_num_workers is the count, so there is nothing to check), and with `threads`
    the CPU threads of each process (OMP_NUM_THREADS, read by torch at start-up, and MKL's)."""
    env = {} if recipe.get("use_ray") else {WORLD_SIZE_ENV: str(plan.processes)}
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), THREADS_ENV: str(threads)}
    return env
