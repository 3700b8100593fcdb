"""QLoRA training steps of a Mixtral-8x7B-width model on one GPU, through the real bilingual recipe.

    python benchmarks/recipes_gpu_step.py [--layers 2 4] [--steps 8] [--workdir outputs/bench/gpu-step]
    python benchmarks/recipes_gpu_step.py --dry-run     # on a CPU: everything but the CUDA part

For each layer count: writes a random-weight Mixtral with Mixtral-8x7B's dimensions (hidden
4096, 8 experts of 14336, 32 heads / 8 KV heads, vocab 32000) but only that many layers, with
the tiny model's tokenizer; writes synthetic chats from the project's bilingual sample text; and
runs the real `python -m recipes train bilingual` on them in one process on the first visible
GPU (4-bit NF4 base, quantize_moe_experts, sdpa with packing, LoRA on attention + experts +
router, the aux loss, sequence_len 4096 packed, non-reentrant checkpointing, paged 8-bit AdamW)
with gradient_accumulation_steps 1, logging every step and no evaluation or checkpoint.

Measured per layer count (steps after the first):
- step time: the median of the per-step times Axolotl's token counters give;
- token slots per second (packed rows, padding included), trainable (labelled) tokens per
  second, and real tokens per second = token slots x Axolotl's own packing efficiency of the
  run's data (`sample_packing_eff_est` in its log);
- peak memory: the largest `memory/device_reserved` Axolotl logs (PyTorch's allocator, reserve
  included), and the peak of the GPU's used memory sampled with nvidia-smi during the run minus
  the used memory before it, which also counts what PyTorch's allocator does not see: the paged
  optimizer's unified memory, the CUDA context, cuBLAS workspaces.
A figure that cannot be read is an error, never a zero.

With two or more layer counts it fits time and memory as `a + b * layers` through the smallest
and the largest (2 and 4 by default, so the fit multiplies the noise by (32 - 4) / 2 = 14, not
by 30 as 1 and 2 would) and extrapolates to Mixtral-8x7B's 32 layers and to one epoch of
BiMed1.3M (632M tokens, real tokens). Every extrapolated figure is an estimate.

`--dry-run` runs on a CPU: it writes the data and, for each layer count, a model of that depth
at the tiny width (a CPU cannot hold Mixtral's width; the real run uses Mixtral's), then runs
`python -m recipes train bilingual --dry-run` with exactly the real run's arguments (Axolotl's
schema for the H100 target, the project's rules, the weights and data checks, the world size)
and checks the resolved recipe it writes. It trains nothing and measures nothing.

Writes <workdir>/results.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FULL_LAYERS = 32  # Mixtral-8x7B
BIMED_TOKENS = 632_000_000  # BiMed1.3M, as reported (English + Arabic)
RECIPE_ACCUMULATION = 16  # gradient_accumulation_steps of recipes/bilingual/qlora.yaml (1 GPU)
SEQUENCE_LEN = 4096  # the bilingual recipe's
TINY_WIDTH = {  # --dry-run only: a model the CPU can write in a second
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
# The resolved recipe must say this, whatever YAML makes of the command line (`no` is False in YAML 1.1).
EXPECTED = {
    "eval_strategy": "no",
    "save_strategy": "no",
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "use_tensorboard": False,
    "sequence_len": SEQUENCE_LEN,
}


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message is one line."""


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# --------------------------------------------------------------------------- inputs


def write_model(folder: Path, layers: int, *, device: str) -> None:
    """Random bf16 weights at Mixtral-8x7B width (tiny width on the CPU), `layers` deep, with the
    tiny model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, MixtralConfig, MixtralForCausalLM

    from bimedix.paths import TINY_MODEL_DIR
    from bimedix.tiny_model import build

    build(TINY_MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    width = {} if device == "cuda" else TINY_WIDTH
    config = MixtralConfig(  # transformers' defaults are Mixtral-8x7B's dimensions
        num_hidden_layers=layers,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        router_aux_loss_coef=0.02,
        sliding_window=None,
        **width,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = MixtralForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def write_data(root: Path, tokens_needed: int) -> Path:
    """Bilingual chats from bimedix/assets/tiny_corpus.txt, enough to fill the packed rows."""
    from bimedix.paths import TINY_CORPUS

    lines = [line.strip() for line in TINY_CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    folder = root / "processed" / "bilingual"
    folder.mkdir(parents=True, exist_ok=True)
    rows, chars, index = [], 0, 0
    while chars < tokens_needed * 4:  # the byte-level tokenizer gives at most ~1 token per char
        turn = [lines[(index + k) % len(lines)] for k in range(6)]
        messages = [
            {"role": "user", "content": " ".join(turn[:2])},
            {"role": "assistant", "content": " ".join(turn[2:])},
        ]
        rows.append(json.dumps({"messages": messages}, ensure_ascii=False))
        chars += sum(len(t) for t in turn)
        index += 1
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "val.jsonl").write_text("\n".join(rows[:8]) + "\n", encoding="utf-8")
    return folder


def train_arguments(model_dir: Path, data_dir: Path, out: Path, steps: int) -> list[str]:
    """`python -m recipes train bilingual ...` as the benchmark runs it (and --dry-run checks it)."""
    return [
        "-m", "recipes", "train", "bilingual", "--launcher", "python",
        "--base-model", str(model_dir), "--data-dir", str(data_dir), "--output-root", str(out),
        "--set", f"max_steps={steps}", "--set", "gradient_accumulation_steps=1", "--set", "logging_steps=1",
        "--set", "eval_strategy=no", "--unset", "eval_steps", "--set", "save_strategy=no", "--unset", "save_steps",
        "--unset", "save_total_limit", "--set", "use_tensorboard=false",
    ]  # fmt: skip


def first_visible_gpu() -> str:
    """The first GPU this process may use, as nvidia-smi -i and CUDA_VISIBLE_DEVICES name it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return visible or "0"


# --------------------------------------------------------------------------- GPU memory


class DevicePeak:
    """Samples the GPU's used memory (nvidia-smi, MiB) in a thread while a run lasts."""

    def __init__(self, gpu: str, interval: float = 0.2) -> None:
        self.gpu, self.interval = gpu, interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def used_mib(self) -> int:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", self.gpu],
            capture_output=True,
            text=True,
            timeout=30,
        )
        text = done.stdout.strip()
        if done.returncode != 0 or not text.isdigit():
            raise BenchError(f"nvidia-smi -i {self.gpu} gave no memory figure: {(done.stderr or text).strip()[:200]}")
        return int(text)

    def _poll(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(BenchError, subprocess.TimeoutExpired):  # a missed sample, not a zero
                self.samples.append(self.used_mib())
            self._stop.wait(self.interval)

    def __enter__(self) -> DevicePeak:
        self.baseline = self.used_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_gib(self) -> float:
        if not self.samples:
            raise BenchError(f"nvidia-smi -i {self.gpu}: no sample taken during the run")
        return (max(self.samples) - self.baseline) / 1024


# --------------------------------------------------------------------------- runs


def run_layers(layers: int, steps: int, workdir: Path) -> dict:
    from recipes.launch import AXOLOTL_ENV
    from recipes.trainlog import summarise

    model_dir = workdir / f"mixtral-width-{layers}-layers"
    if not (model_dir / "config.json").exists():
        write_model(model_dir, layers, device="cuda")
    out = workdir / f"runs-{layers}"
    shutil.rmtree(out, ignore_errors=True)
    gpu = first_visible_gpu()
    env = {
        **os.environ, **AXOLOTL_ENV, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": gpu,
    }  # fmt: skip
    command = [sys.executable, *train_arguments(model_dir, workdir / "data", out, steps)]
    with DevicePeak(gpu) as device:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    log = out / "bilingual" / "train.log"
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BenchError(f"{layers} layers: training failed (exit {done.returncode}): {tail}; log: {log}")
    summary = summarise(log.read_text(encoding="utf-8"))
    if not summary.step_seconds:
        raise BenchError(f"{layers} layers: no per-step timings in {log}")
    if summary.peak_reserved_gib is None:
        raise BenchError(f"{layers} layers: Axolotl logged no memory/device_reserved in {log}")
    if summary.packing_efficiency is None:
        raise BenchError(f"{layers} layers: no sample_packing_eff_est in {log}")
    slots_per_second = summary.tokens_per_second
    return {
        "layers": layers,
        "steps": len(summary.losses),
        "step_seconds": statistics.median(summary.step_seconds),
        "token_slots_per_second": slots_per_second,
        "trainable_tokens_per_second": summary.trainable_tokens_per_second,
        "packing_efficiency": summary.packing_efficiency,
        "real_tokens_per_second": slots_per_second * summary.packing_efficiency,
        "peak_reserved_gib": summary.peak_reserved_gib,
        "peak_device_gib": device.peak_gib,
        "losses_finite": summary.all_finite,
    }


def extrapolate(rows: list[dict]) -> dict:
    """Linear in the layer count through the smallest and the largest measured depth."""
    rows = sorted(rows, key=lambda r: r["layers"])
    if len(rows) < 2:
        raise BenchError("extrapolating to 32 layers needs two layer counts (--layers 2 4)")
    lo, hi = rows[0], rows[-1]
    span = hi["layers"] - lo["layers"]

    def at_full(key: str) -> float:
        for row in (lo, hi):
            if row.get(key) is None:
                raise BenchError(f"{row['layers']} layers: {key} missing")
        slope = (hi[key] - lo[key]) / span
        return hi[key] + slope * (FULL_LAYERS - hi["layers"])

    step = at_full("step_seconds")
    slots = hi["token_slots_per_second"] * hi["step_seconds"]  # token slots per micro-step (one packed row)
    real = slots * hi["packing_efficiency"]
    return {
        "method": f"linear fit through {lo['layers']} and {hi['layers']} layers, to {FULL_LAYERS} (an estimate)",
        "step_seconds": step,
        "token_slots_per_second": slots / step,
        "real_tokens_per_second": real / step,
        "peak_reserved_gib": at_full("peak_reserved_gib"),
        "peak_device_gib": at_full("peak_device_gib"),
        "recipe_step_seconds": step * RECIPE_ACCUMULATION,
        "hours_per_epoch_bimed_1gpu": BIMED_TOKENS / (real / step) / 3600,
    }


# --------------------------------------------------------------------------- dry run


def dry_run(layers: list[int], steps: int, workdir: Path) -> int:
    """Everything but the CUDA part: data, models (tiny width), the real command with --dry-run."""
    from recipes.launch import AXOLOTL_ENV

    data_dir = workdir / "data"
    write_data(data_dir, tokens_needed=(steps + 2) * SEQUENCE_LEN)
    env = {**os.environ, **AXOLOTL_ENV, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for n in layers:
        model_dir = workdir / f"tiny-width-{n}-layers"
        if not (model_dir / "config.json").exists():
            write_model(model_dir, n, device="cpu")
        out = workdir / f"runs-{n}"
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, *train_arguments(model_dir, data_dir, out, steps), "--dry-run"]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise BenchError(f"{n} layers: `python -m recipes train bilingual --dry-run` failed (exit {done.returncode}): {tail}")  # fmt: skip
        resolved = yaml.safe_load((out / "bilingual" / "axolotl.yaml").read_text(encoding="utf-8"))
        wanted = {**EXPECTED, "max_steps": steps}
        wrong = {k: resolved.get(k) for k, v in wanted.items() if resolved.get(k) != v or type(resolved.get(k)) is not type(v)}  # fmt: skip
        gone = [k for k in ("eval_steps", "save_steps", "save_total_limit") if k in resolved]
        if wrong or gone:
            raise BenchError(f"{n} layers: the resolved recipe says {wrong or ''}{' and still has ' + ', '.join(gone) if gone else ''}")  # fmt: skip
        print(f"dry run, {n} layers: checks passed; the real run would be:")
        print("  " + done.stdout.strip().splitlines()[-1])
    print(f"dry run done: {len(layers)} layer counts; nothing trained, nothing measured")
    return 0


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4], help="layer counts to measure")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run (the first is not timed)")
    parser.add_argument("--workdir", default="outputs/bench/gpu-step", help="models, data and runs go here")
    parser.add_argument("--dry-run", action="store_true", help="on a CPU: all but the CUDA part, nothing measured")
    args = parser.parse_args(argv)
    if args.steps < 3 or any(n < 1 for n in args.layers):
        return fail("--steps must be at least 3 and every --layers value at least 1")
    layers = sorted(set(args.layers))
    if len(layers) < 2 and not args.dry_run:
        return fail("give two layer counts (--layers 2 4): one point cannot be extrapolated")
    workdir = ROOT / args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        try:
            return dry_run(layers, args.steps, workdir)
        except BenchError as err:
            return fail(str(err))

    import torch

    if not torch.cuda.is_available():
        return fail("this benchmark needs a CUDA GPU (torch sees none): run it on a GPU host, see recipes/README.md; --dry-run checks it on a CPU")  # fmt: skip
    if shutil.which("nvidia-smi") is None:
        return fail("nvidia-smi is missing: it measures the GPU's used memory (the paged optimizer is outside PyTorch's allocator)")  # fmt: skip
    write_data(workdir / "data", tokens_needed=(args.steps + 2) * SEQUENCE_LEN)
    device = torch.cuda.get_device_name(0)
    started = time.perf_counter()
    try:
        rows = [run_layers(n, args.steps, workdir) for n in layers]
        estimate = extrapolate(rows)
    except BenchError as err:
        return fail(str(err))
    result = {
        "device": device,
        "torch": torch.__version__,
        "wall_seconds": time.perf_counter() - started,
        "measured": rows,
        "extrapolated": estimate,
    }
    (workdir / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"\n{device}: one QLoRA micro-step (1 packed row of {SEQUENCE_LEN} tokens) of the bilingual recipe\n")
    print("| layers | step (s) | token slots/s | real tokens/s | peak reserved (GiB) | peak device used (GiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['layers']} | {row['step_seconds']:.2f} | {row['token_slots_per_second']:,.0f} | {row['real_tokens_per_second']:,.0f} | {row['peak_reserved_gib']:.1f} | {row['peak_device_gib']:.1f} |")  # fmt: skip
    x = estimate
    print(
        f"| {FULL_LAYERS} (estimate) | {x['step_seconds']:.2f} | {x['token_slots_per_second']:,.0f} | "
        f"{x['real_tokens_per_second']:,.0f} | {x['peak_reserved_gib']:.1f} | {x['peak_device_gib']:.1f} |\n\n"
        f"{x['method']}; packing efficiency {rows[-1]['packing_efficiency']:.1%}; a recipe step "
        f"({RECIPE_ACCUMULATION} micro-steps) ~{x['recipe_step_seconds']:.0f} s; one epoch of BiMed1.3M "
        f"({BIMED_TOKENS / 1e6:.0f}M real tokens) on 1 GPU ~{x['hours_per_epoch_bimed_1gpu']:.0f} h\n"
        f"written: {workdir / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
