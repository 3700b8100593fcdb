"""One QLoRA step of a Mixtral-8x7B-width model on a GPU, through the real bilingual recipe.

    python benchmarks/recipes_gpu_step.py [--layers 1 2] [--steps 8] [--workdir outputs/bench/gpu-step]

For each layer count: writes a random-weight Mixtral with Mixtral-8x7B's dimensions (hidden
4096, 8 experts of 14336, 32 heads / 8 KV heads, vocab 32000) but only that many layers, with
the tiny model's tokenizer; writes packed-length synthetic chats from the project's bilingual
sample text; and runs the real `python -m recipes train bilingual` on them (4-bit NF4 base,
quantize_moe_experts, flash-attention, LoRA on attention + experts + router, aux loss,
sequence_len 4096 packed, gradient checkpointing) with gradient_accumulation_steps 1 and
logging every step. From Axolotl's per-step logs: step time (median after the first step),
token slots per second, and peak allocated GPU memory. With two layer counts it fits
time and memory as `a + b * layers` and extrapolates to Mixtral-8x7B's 32 layers.

Needs a CUDA GPU and requirements/gpu.txt (flash-attn); refuses cleanly on a CPU.
Writes <workdir>/results.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FULL_LAYERS = 32  # Mixtral-8x7B
BIMED_TOKENS = 632_000_000  # BiMed1.3M, as reported (English + Arabic)
RECIPE_ACCUMULATION = 16  # gradient_accumulation_steps of recipes/bilingual/qlora.yaml (1 GPU)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def write_model(folder: Path, layers: int) -> None:
    """Random bf16 weights at Mixtral-8x7B width, `layers` deep, with the tiny model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, MixtralConfig, MixtralForCausalLM

    from bimedix.paths import TINY_MODEL_DIR
    from bimedix.tiny_model import build

    build(TINY_MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    config = MixtralConfig(  # transformers' defaults are Mixtral-8x7B's dimensions
        num_hidden_layers=layers,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        router_aux_loss_coef=0.02,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = MixtralForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()


def write_data(root: Path, tokens_needed: int) -> None:
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


def run_layers(layers: int, steps: int, workdir: Path) -> dict:
    from recipes.launch import AXOLOTL_ENV
    from recipes.trainlog import summarise

    model_dir = workdir / f"mixtral-width-{layers}-layers"
    if not (model_dir / "config.json").exists():
        write_model(model_dir, layers)
    out = workdir / f"runs-{layers}"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable, "-m", "recipes", "train", "bilingual",
        "--base-model", str(model_dir), "--data-dir", str(workdir / "data"), "--output-root", str(out),
        "--set", f"max_steps={steps}", "--set", "gradient_accumulation_steps=1", "--set", "logging_steps=1",
        "--set", "eval_strategy=no", "--unset", "eval_steps", "--set", "save_strategy=no", "--unset", "save_steps",
        "--set", "use_tensorboard=false",
    ]  # fmt: skip
    env = {**os.environ, **AXOLOTL_ENV, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    log = out / "bilingual" / "train.log"
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"{layers} layers: training failed (exit {done.returncode}): {tail}; log: {log}")
    summary = summarise(log.read_text(encoding="utf-8"))
    if not summary.step_seconds:
        raise RuntimeError(f"{layers} layers: no per-step timings in {log}")
    step = sorted(summary.step_seconds)[len(summary.step_seconds) // 2]
    return {
        "layers": layers,
        "steps": len(summary.losses),
        "step_seconds": step,
        "token_slots_per_second": summary.tokens_per_second,
        "peak_allocated_gib": summary.peak_gib,
        "losses_finite": summary.all_finite,
    }


def extrapolate(rows: list[dict]) -> dict:
    """Linear in the layer count through the measured points (or proportional with one point)."""
    rows = sorted(rows, key=lambda r: r["layers"])
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        span = hi["layers"] - lo["layers"]
        per_layer_s = (hi["step_seconds"] - lo["step_seconds"]) / span
        per_layer_gib = ((hi["peak_allocated_gib"] or 0) - (lo["peak_allocated_gib"] or 0)) / span
        step = hi["step_seconds"] + per_layer_s * (FULL_LAYERS - hi["layers"])
        memory = (hi["peak_allocated_gib"] or 0) + per_layer_gib * (FULL_LAYERS - hi["layers"])
        method = f"linear fit through {lo['layers']} and {hi['layers']} layers"
    else:
        only = rows[0]
        step = only["step_seconds"] * FULL_LAYERS / only["layers"]
        memory = (only["peak_allocated_gib"] or 0) * FULL_LAYERS / only["layers"]
        method = f"proportional to the layer count from {only['layers']} layers (over-counts embeddings)"
    slots = rows[-1]["token_slots_per_second"] * rows[-1]["step_seconds"]  # token slots per micro-step
    return {
        "method": method,
        "step_seconds_32_layers": step,
        "token_slots_per_second_32_layers": slots / step,
        "peak_allocated_gib_32_layers": memory,
        "recipe_step_seconds_32_layers": step * RECIPE_ACCUMULATION,
        "hours_per_epoch_bimed_1gpu": BIMED_TOKENS / (slots / step) / 3600,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2], help="layer counts to measure")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run (the first is not timed)")
    parser.add_argument("--workdir", default="outputs/bench/gpu-step", help="models, data and runs go here")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        return fail("this benchmark needs a CUDA GPU (torch sees none): run it on a GPU host, see recipes/README.md")
    try:
        import flash_attn  # noqa: F401  (the recipe's attention backend)
    except ImportError:
        return fail("flash-attn is missing: pip install -r requirements/gpu.txt (the recipe uses flash_attention_2)")
    if args.steps < 3 or any(n < 1 for n in args.layers):
        return fail("--steps must be at least 3 and every --layers value at least 1")

    workdir = ROOT / args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "data", tokens_needed=(args.steps + 2) * 4096 * 2)
    device = torch.cuda.get_device_name(0)
    try:
        rows = [run_layers(n, args.steps, workdir) for n in sorted(set(args.layers))]
    except RuntimeError as err:
        return fail(str(err))
    result = {"device": device, "torch": torch.__version__, "measured": rows, "extrapolated": extrapolate(rows)}
    (workdir / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"\n{device}: one QLoRA micro-step (1 packed row of 4096 tokens) of the bilingual recipe\n")
    print("| layers | step (s) | token slots/s | peak allocated (GiB) |\n|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['layers']} | {row['step_seconds']:.2f} | {row['token_slots_per_second']:,.0f} | {row['peak_allocated_gib']} |")  # fmt: skip
    x = result["extrapolated"]
    print(
        f"| 32 (extrapolated) | {x['step_seconds_32_layers']:.2f} | {x['token_slots_per_second_32_layers']:,.0f} "
        f"| {x['peak_allocated_gib_32_layers']:.1f} |\n\n{x['method']}; a recipe step (16 micro-steps) "
        f"~{x['recipe_step_seconds_32_layers']:.0f} s; one epoch of BiMed1.3M (632M tokens) on 1 GPU "
        f"~{x['hours_per_epoch_bimed_1gpu']:.0f} h\nwritten: {workdir / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
