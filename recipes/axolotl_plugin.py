"""The recipes' Axolotl plugin (`plugins: [recipes.axolotl_plugin.BimedixPlugin]` in every recipe;
`python -m recipes train` adds it to a resolved recipe that lacks it). Axolotl imports it in
each training process (the repository root is on PYTHONPATH).

- **Seeds the adapter's initialisation.** Axolotl passes `seed` to the Trainer only, which is
  built after the model and the adapter: peft draws the LoRA A matrices from an unseeded
  generator, so two runs of one recipe start from different adapters and `seed: 42` does not
  make a run repeatable (checked on the tiny recipe: every lora_A differed between two runs).
  This seeds torch, numpy and random with the recipe's seed right before peft builds the
  adapter (Axolotl's `pre_lora_load` hook, axolotl/loaders/model.py:343). That was Axolotl
  0.19; Axolotl 0.21 also re-draws every fresh lora_A from `seed` itself, per module name,
  right after peft builds the adapter (axolotl/loaders/model.py:348,
  axolotl/loaders/adapter.py:312-358). The hook stays: it costs nothing, and it keeps the rest
  of what peft draws (and an Axolotl without that re-draw) repeatable.
- **Refuses a world size nobody planned for.** `python -m recipes train` works out how many
  processes the launcher will start, sets gradient_accumulation_steps so that the recipe's
  global batch holds, and exports that count as BIMEDIX_WORLD_SIZE. Axolotl multiplies the
  batch by WORLD_SIZE (axolotl/utils/config/__init__.py:254-263), so if the launcher started a
  different number (an accelerate config file, CUDA_VISIBLE_DEVICES changed in between), each
  process stops before loading the model instead of training with a silently different batch.
- **Says how many CPU threads it computes with.** Each process prints one line with its rank,
  `torch.get_num_threads()` and OMP_NUM_THREADS, read inside the process itself, beside the count
  `python -m recipes train` planned (BIMEDIX_CPU_THREADS); a launcher that overrode the plan shows
  as a warning in train.log (`accelerate launch` alone gives every process one thread).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from axolotl.integrations.base import BasePlugin

from recipes.world import THREADS_ENV, WORLD_SIZE_ENV


def check_world_size(environ: Mapping[str, str] = os.environ) -> None:
    """Raise when the launcher started another number of processes than was planned."""
    planned = environ.get(WORLD_SIZE_ENV)
    if not planned:
        return  # not started by `python -m recipes train`: nothing was planned
    actual = int(environ.get("WORLD_SIZE") or 1)
    if actual != int(planned):
        raise RuntimeError(
            f"the launcher started {actual} training processes, but `python -m recipes train` set "
            f"gradient_accumulation_steps for {planned}: the global batch would change silently; "
            f"pass the launcher's process count explicitly (LAUNCHER_ARGS) and run again"
        )


def thread_report(environ: Mapping[str, str] = os.environ) -> str:
    """One line: this process's rank, the threads torch uses, OMP_NUM_THREADS and the planned count."""
    import torch

    rank, world = environ.get("RANK", "0"), environ.get("WORLD_SIZE", "1")
    used, planned = torch.get_num_threads(), environ.get(THREADS_ENV)
    line = (
        f"bimedix: training process rank {rank} of {world} (pid {os.getpid()}): torch uses {used} CPU "
        f"threads, OMP_NUM_THREADS={environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    if planned:
        line += f", planned {planned}" + ("" if int(planned) == used else " (WARNING: not what was planned)")
    return line


class BimedixPlugin(BasePlugin):
    """Seeds the adapter initialisation; checks the world size the batch was planned for."""

    def pre_model_load(self, cfg) -> None:
        check_world_size()
        print(thread_report(), flush=True)

    def pre_lora_load(self, cfg, model) -> None:
        if cfg.seed is not None:
            from transformers import set_seed

            set_seed(int(cfg.seed))
