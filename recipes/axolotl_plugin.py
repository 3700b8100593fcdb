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
- **Resumes several processes on the rows they would have trained.** See
  `wrapped_batch_samplers_pass_the_epoch_on`.
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


def cpu_processes_skip_the_p2p_probe(environ: Mapping[str, str] = os.environ) -> bool:
    """On a machine without CUDA, several processes (DDP over gloo): Axolotl's GPU peer-to-peer
    probe (axolotl/utils/trainer.py:732 -> axolotl/utils/environment.py:39) calls
    torch.cuda.can_device_access_peer, which raises "Found no NVIDIA driver" (a RuntimeError: the
    probe catches AssertionError only) and ends every rank before training. With no GPU there is
    no peer-to-peer link to probe: the probe is answered "no P2P" (Axolotl then sets
    NCCL_P2P_DISABLE=1, which gloo ignores). True when it did so."""
    import torch

    if int(environ.get("WORLD_SIZE") or 1) < 2 or torch.cuda.is_available():
        return False
    import axolotl.utils.trainer

    axolotl.utils.trainer.check_cuda_p2p_ib_support = lambda: False
    return True


def _pass_the_epoch_on(self, epoch: int) -> None:
    inner = self.batch_sampler
    if hasattr(inner, "set_epoch"):
        inner.set_epoch(epoch)
    sampler = getattr(inner, "sampler", None)  # what DataLoaderShard.set_epoch does for a sampler it holds
    if sampler is not inner and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def wrapped_batch_samplers_pass_the_epoch_on() -> bool:
    """On several processes accelerate wraps Axolotl's multipack batch sampler in a BatchSamplerShard,
    and on resume inside an epoch in a SkipBatchSampler too (accelerate/data_loader.py:1338,
    :1412). Neither has set_epoch, so the epoch the Trainer sets (transformers/trainer.py:1834-1841
    reaches through one wrapper only) never reaches the multipack sampler, which keeps the batches it
    cached before the resume, nor its SeedableRandomSampler (accelerate/data_loader.py:91-107), whose
    order then depends on how often it was iterated. The resumed epoch trains other rows than the
    run that was interrupted: some twice, some never, with no message (one process holds the sampler
    directly and resumes right). Each wrapper passes the epoch on, as DataLoaderShard.set_epoch does
    for the sampler it holds (accelerate/data_loader.py:622-635). True when it added the method."""
    from accelerate import data_loader

    added = False
    for cls in (data_loader.BatchSamplerShard, data_loader.SkipBatchSampler):
        if "set_epoch" not in vars(cls):
            cls.set_epoch = _pass_the_epoch_on
            added = True
    return added


def cpu_ranks_load_on_the_cpu(cfg) -> bool:
    """Axolotl's normalize_config gives every process of a multi-process run the device map
    {"": LOCAL_RANK} (axolotl/utils/config/__init__.py:255-256), after choose_device had picked
    {"": "cpu"} on a machine without CUDA (:154): the integer is a CUDA device, and loading the
    model fails with "Found no NVIDIA driver". On such a machine each rank loads on the CPU.
    True when it changed the map."""
    if getattr(cfg, "device", None) != "cpu" or int(cfg.world_size or 1) < 2:
        return False
    if cfg.device_map == {"": int(os.environ.get("LOCAL_RANK", 0))}:
        cfg.device_map = {"": "cpu"}
        return True
    return False


def check_trainer_world(trainer, environ: Mapping[str, str] = os.environ) -> None:
    """Raise when the launcher started several processes but the Trainer does not train them as one
    (no distributed state: no DDP, each process alone on all the data; what a CPU launch without
    ACCELERATE_USE_CPU gives, with nothing but a warning)."""
    started = int(environ.get("WORLD_SIZE") or 1)
    if started > 1 and trainer.args.world_size != started:
        raise RuntimeError(
            f"the launcher started {started} training processes, but the Trainer runs {trainer.args.world_size} "
            f"as one job (parallel mode {trainer.args.parallel_mode.value}): each would train alone on all the "
            f"data; on a CPU, start it through `python -m recipes train` (it sets ACCELERATE_USE_CPU=true)"
        )


def average_tokens_across_processes(trainer) -> bool:
    """Axolotl builds its TrainingArguments with average_tokens_across_devices=False, whatever the
    config says (axolotl/core/builders/base.py:762). Then each process divides its loss by its OWN
    labelled tokens and DDP averages those means: on several processes a token of a short packed row
    weighs more than one of a long row, while one process with gradient accumulation divides by the
    tokens of the whole optimizer step (transformers/trainer.py, `_get_num_items_in_batch`). The
    same global batch then trains another objective (measured on the tiny recipe, 2 processes x 1
    against 1 x 2 accumulation steps, one SGD step: the LoRA updates differ by about 20% in
    direction). With the flag on, transformers counts the tokens of all processes and scales each
    process's loss by their number, so the gradient is the one-process one. True when it was off."""
    if trainer.args.world_size < 2 or trainer.args.average_tokens_across_devices:
        return False
    trainer.args.average_tokens_across_devices = True
    return True


class BimedixPlugin(BasePlugin):
    """Seeds the adapter initialisation; checks the world size the batch was planned for; passes the
    epoch to wrapped samplers."""

    def register(self, cfg) -> None:  # before Axolotl's load_cfg probes the GPUs (axolotl/cli/config.py:297-324)
        cpu_processes_skip_the_p2p_probe()
        wrapped_batch_samplers_pass_the_epoch_on()

    def load_datasets(self, cfg, preprocess: bool = False):  # after load_cfg, before the model is built
        cpu_ranks_load_on_the_cpu(cfg)
        return None  # Axolotl loads the datasets

    def pre_model_load(self, cfg) -> None:
        check_world_size()
        print(thread_report(), flush=True)

    def post_trainer_create(self, cfg, trainer) -> None:
        check_trainer_world(trainer)
        if average_tokens_across_processes(trainer):
            print("bimedix: the loss averages over the tokens of all processes (the one-process objective)", flush=True)

    def pre_lora_load(self, cfg, model) -> None:
        if cfg.seed is not None:
            from transformers import set_seed

            set_seed(int(cfg.seed))
