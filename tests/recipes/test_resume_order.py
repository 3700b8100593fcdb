"""A run resumed inside an epoch trains the rows the interrupted run would have trained, on one
process and on several: Axolotl's multipack batch sampler as accelerate prepares it for each rank,
and the epoch set the way the Trainer sets it. The end-to-end figures (a rank killed, the run
resumed from a checkpoint inside an epoch) are `make bench-distributed --save-steps 3`'s."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from accelerate import data_loader
from accelerate.data_loader import prepare_data_loader, skip_first_batches
from axolotl.utils.samplers.multipack import MultipackBatchSampler
from torch.utils.data import DataLoader, RandomSampler

from recipes.axolotl_plugin import wrapped_batch_samplers_pass_the_epoch_on

ROWS, EPOCHS = 40, 2  # resumed in the first epoch and in a later one
LENGTHS = np.random.RandomState(0).randint(20, 120, ROWS)


class Rows(list):
    """Row numbers; a packed bin (a list of row numbers) reads as the tuple of its rows."""

    def __getitem__(self, index):
        return tuple(index) if isinstance(index, list) else super().__getitem__(index)


def prepared(processes: int, rank: int):
    """The training dataloader of one rank: what Axolotl builds (axolotl/core/trainers/base.py) and
    accelerate prepares (the Trainer's defaults: seedable sampler, seed 42)."""
    torch.manual_seed(42)
    rows = Rows(range(ROWS))
    sampler = MultipackBatchSampler(
        RandomSampler(rows), batch_size=1, batch_max_len=256, lengths=LENGTHS, bin_size=200, drop_last=True
    )
    loader = DataLoader(rows, batch_sampler=sampler, collate_fn=list)
    return prepare_data_loader(
        loader,
        num_processes=processes,
        process_index=rank,
        put_on_device=False,
        use_seedable_sampler=True,
        data_seed=42,
    )


def set_epoch(loader, epoch: int) -> None:
    """What the Trainer does at the start of every epoch (transformers/trainer.py:1834-1841)."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    underlying = getattr(getattr(loader, "batch_sampler", None), "batch_sampler", None)
    if hasattr(underlying, "set_epoch"):
        underlying.set_epoch(epoch)


def epochs(processes: int, rank: int, resume_in: int | None = None, trained: int = 0) -> list[list]:
    """Every epoch's batches; in epoch `resume_in` the first `trained` batches are skipped the way
    the Trainer resumes inside an epoch (transformers/trainer.py:1825-1827)."""
    loader = prepared(processes, rank)
    len(loader)  # the Trainer sizes the run first (the multipack sampler packs to count its batches)
    out = []
    for epoch in range(EPOCHS):
        current = skip_first_batches(loader, trained) if epoch == resume_in else loader
        set_epoch(current, epoch)
        out.append(list(current))
    return out


def resumed_on_the_same_rows(processes: int, rank: int) -> bool:
    uninterrupted = epochs(processes, rank)
    assert all(len(batches) > 2 for batches in uninterrupted)
    for epoch in range(EPOCHS):
        resumed = epochs(processes, rank, resume_in=epoch, trained=1)
        if resumed[epoch] != uninterrupted[epoch][1:] or resumed[epoch + 1 :] != uninterrupted[epoch + 1 :]:
            return False
    return True


@pytest.fixture(autouse=True)
def no_full_collections(monkeypatch):
    """The sampler runs a full gc.collect() each time it packs (multipack.py: generate_batches), about
    0.2 s in a process holding torch and Axolotl, dozens of times here; it frees memory only."""
    from axolotl.utils.samplers import multipack

    monkeypatch.setattr(multipack, "gc", SimpleNamespace(collect=lambda *args: 0))


@pytest.fixture
def passing_the_epoch_on():
    added = [
        cls for cls in (data_loader.BatchSamplerShard, data_loader.SkipBatchSampler) if "set_epoch" not in vars(cls)
    ]
    assert wrapped_batch_samplers_pass_the_epoch_on() == bool(added)
    yield
    for cls in added:
        del cls.set_epoch


def test_accelerate_wrappers_still_lack_set_epoch():
    """If accelerate gives its wrappers set_epoch itself, the plugin leaves them alone: re-check the
    defect and retire the plugin's method."""
    assert "set_epoch" not in vars(data_loader.BatchSamplerShard)
    assert "set_epoch" not in vars(data_loader.SkipBatchSampler)


def test_without_the_plugin_two_processes_resume_on_other_rows():
    assert resumed_on_the_same_rows(1, 0)  # one process holds the sampler directly
    assert not resumed_on_the_same_rows(2, 0)


@pytest.mark.parametrize("processes,rank", [(1, 0), (2, 0), (2, 1)])
def test_with_the_plugin_every_rank_resumes_on_its_rows(passing_the_epoch_on, processes, rank):
    assert resumed_on_the_same_rows(processes, rank)


def test_with_the_plugin_two_ranks_share_the_epochs_rows(passing_the_epoch_on):
    """The ranks split one order of packed batches between them: none is trained twice in an epoch."""
    for first, second in zip(epochs(2, 0), epochs(2, 1), strict=True):
        rows = [row for batch in first + second for packed in batch for row in packed]
        assert len(rows) == len(set(rows))
