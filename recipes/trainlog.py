"""Read the metrics Axolotl prints while training (`{'loss': '7.01', ...}` per logging step).

Axolotl (through the Hugging Face Trainer) prints one Python dict per logging step, between
progress-bar redraws; the values are strings. With `logging_steps: 1` each step's dict has the
trainable tokens so far and the trainable tokens per second since the previous step, which
gives each step's duration without any timer of our own.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import statistics
from dataclasses import dataclass

_DICT = re.compile(r"\{'(?:loss|train_runtime|eval_loss)'[^{}]*\}")
# Axolotl's packing efficiency of the training data, per rank (axolotl/utils/trainer.py:541-543)
_PACKING = re.compile(r"sample_packing_eff_est across ranks: \[([^\]]*)\]")


def records(text: str) -> list[dict[str, float]]:
    """Every metrics dict in the log, values as floats (unparseable values are skipped)."""
    out = []
    for match in _DICT.finditer(text):
        try:
            raw = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            continue
        row = {}
        for key, value in raw.items():
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                continue
        out.append(row)
    return out


@dataclass(frozen=True)
class TrainSummary:
    losses: list[float]
    step_seconds: list[float]  # per step after the first (the first carries start-up costs)
    step_tokens: list[float]  # token slots of those steps (packed rows: padding included, labels or not)
    step_trainable: list[float]  # labelled (trainable) tokens of those steps
    runtime: float | None  # the Trainer's train_runtime, seconds
    steps_per_second: float | None  # the Trainer's train_steps_per_second (includes the first step)
    peak_allocated_gib: float | None  # the largest memory/max_allocated (GiB) logged; None if none was
    peak_reserved_gib: float | None  # the largest memory/device_reserved (GiB): the allocator's reserve too
    packing_efficiency: float | None  # Axolotl's sample_packing_eff_est (real tokens / token slots)

    @property
    def steady_steps_per_second(self) -> float | None:
        return 1.0 / statistics.median(self.step_seconds) if self.step_seconds else None

    @property
    def tokens_per_second(self) -> float | None:
        """Token slots per second: padding included (the packed rows' full length)."""
        return sum(self.step_tokens) / sum(self.step_seconds) if self.step_seconds else None

    @property
    def trainable_tokens_per_second(self) -> float | None:
        return sum(self.step_trainable) / sum(self.step_seconds) if self.step_seconds else None

    @property
    def all_finite(self) -> bool:
        return bool(self.losses) and all(math.isfinite(x) for x in self.losses)


def summarise(text: str) -> TrainSummary:
    rows = records(text)
    steps = [r for r in rows if "loss" in r]
    seconds, tokens, trainable = [], [], []
    for previous, current in itertools.pairwise(steps):
        rate = current.get("tokens/train_per_sec_per_gpu")
        done = current.get("tokens/trainable", 0) - previous.get("tokens/trainable", 0)
        if rate and done > 0:
            seconds.append(done / rate)
            trainable.append(done)
            tokens.append(current.get("tokens/total", 0) - previous.get("tokens/total", 0))
    final = next((r for r in reversed(rows) if "train_runtime" in r), {})

    def peak(key: str) -> float | None:
        values = [r[key] for r in rows if key in r]
        return max(values) if values else None

    packing = None
    for match in _PACKING.finditer(text):
        values = [float(v) for v in re.findall(r"[\d.]+(?:e-?\d+)?", match.group(1))]
        packing = max(values) if values else packing
    return TrainSummary(
        losses=[r["loss"] for r in steps],
        step_seconds=seconds,
        step_tokens=tokens,
        step_trainable=trainable,
        runtime=final.get("train_runtime"),
        steps_per_second=final.get("train_steps_per_second"),
        peak_allocated_gib=peak("memory/max_allocated (GiB)"),
        peak_reserved_gib=peak("memory/device_reserved (GiB)"),
        packing_efficiency=packing,
    )
