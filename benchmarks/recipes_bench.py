"""Recipes benchmark: tiny-recipe train steps per second on the CPU, and packing efficiency.

    python benchmarks/recipes_bench.py [--data-dir data] [--steps 20] [--skip-train]
    make bench-recipes

1. Packing efficiency: the share of non-padding tokens in the batches Axolotl's own trainer
   builds for the tiny recipe over one epoch of data/processed/bilingual/train.jsonl, with
   packing on (the recipe), and off (padding to the longest row of each batch, Axolotl's
   default; and to sequence_len, fixed shapes).
2. Speed: the real `python -m recipes train tiny` for --steps steps; steady steps per second
   (median step after the first, from Axolotl's per-step token rate), the Trainer's own
   steps per second (which includes the first step) and the wall time of the whole command.

Prints a Markdown table and writes outputs/bench/recipes.json, with the load average
before and after (the machine may be shared: the figures are only as quiet as it was).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recipes.config import dump, override, rel  # noqa: E402
from recipes.launch import AXOLOTL_ENV, RunOptions, resolve  # noqa: E402
from recipes.registry import load_registry  # noqa: E402
from recipes.trainlog import summarise  # noqa: E402

PACKING_CASES = {
    "on (the recipe)": {},
    "off, pad to the longest row (rounded up to 64, Axolotl's default)": {
        "sample_packing": False,
        "pad_to_sequence_len": None,
    },
    "off, pad to sequence_len": {"sample_packing": False, "pad_to_sequence_len": True},
}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def packing_efficiency(data_dir: str, scratch: Path) -> list[dict]:
    """Count real and padding tokens in every batch of one epoch, as Axolotl's trainer builds them."""
    os.environ.update(AXOLOTL_ENV)
    from axolotl.cli.config import load_cfg
    from axolotl.common.datasets import load_datasets
    from axolotl.train import setup_model_and_trainer

    registry = load_registry()
    rows = []
    for label, changes in PACKING_CASES.items():
        resolved = resolve(RunOptions("tiny", data_dir=data_dir, output_root=str(scratch / "packing")), registry)
        recipe = resolved.recipe
        for key, value in {**changes, "eval_strategy": "no", "eval_steps": None}.items():
            if value is None:
                recipe.data.pop(key, None)
            else:
                override(recipe, key, value)
        config = scratch / f"packing-{len(rows)}.yaml"
        dump(recipe, config, f"benchmarks/recipes_bench.py: packing {label}")
        cfg = load_cfg(str(config))
        meta = load_datasets(cfg=cfg)
        data_tokens = sum(len(ids) for ids in meta.train_dataset["input_ids"])
        trainer, _, tokenizer, *_ = setup_model_and_trainer(cfg, meta)
        pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        if pad is None or pad == eos:
            raise SystemExit("error: the tokenizer pads with its EOS token: padding cannot be told from text")
        real = slots = batches = 0
        for batch in trainer.get_train_dataloader():
            ids = batch["input_ids"]
            mask = batch.get("attention_mask")
            counted = int((ids != pad).sum())
            if mask is not None and int((mask != 0).sum()) != counted:
                raise SystemExit("error: attention_mask and the padding count disagree")
            real += counted
            slots += ids.numel()
            batches += 1
        rows.append(
            {
                "packing": label,
                "batches": batches,
                "real_tokens": real,
                "slots": slots,
                "efficiency": real / slots if slots else 0.0,
                "data_tokens": data_tokens,
                "epoch_coverage": real / data_tokens if data_tokens else 0.0,
                "sequence_len": cfg.sequence_len,
                "micro_batch_size": cfg.micro_batch_size,
            }
        )
        del trainer
    return rows


def train_speed(data_dir: str, steps: int, scratch: Path) -> dict:
    command = [
        sys.executable, "-m", "recipes", "train", "tiny",
        "--data-dir", data_dir, "--output-root", str(scratch / "speed"),
        "--set", f"max_steps={steps}",
    ]  # fmt: skip
    env = {**os.environ, **AXOLOTL_ENV, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise SystemExit(f"error: the tiny training failed (exit {done.returncode}): {' '.join(tail)}")
    summary = summarise((scratch / "speed" / "tiny" / "train.log").read_text(encoding="utf-8"))
    return {
        "steps": len(summary.losses),
        "steady_steps_per_second": summary.steady_steps_per_second,
        "trainer_steps_per_second": summary.steps_per_second,
        "train_runtime_s": summary.runtime,
        "wall_s_whole_command": wall,
        "final_loss": summary.losses[-1] if summary.losses else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="holds processed/bilingual/{train,val}.jsonl")
    parser.add_argument("--steps", type=int, default=20, help="training steps for the speed run")
    parser.add_argument("--skip-train", action="store_true", help="only the packing efficiency")
    parser.add_argument("--out", default="outputs/bench/recipes.json")
    args = parser.parse_args(argv)
    train_file = ROOT / args.data_dir / "processed" / "bilingual" / "train.jsonl"
    if not train_file.exists():
        print(f"error: {rel(train_file)}: no such file; run `make data` or pass --data-dir", file=sys.stderr)
        return 1
    result: dict = {"data": rel(train_file), "host": platform.node(), "cpus": os.cpu_count(), "load_before": load_average()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-recipes-") as scratch:
        result["packing"] = packing_efficiency(args.data_dir, Path(scratch))
        if not args.skip_train:
            result["speed"] = train_speed(args.data_dir, args.steps, Path(scratch))
    result["load_after"] = load_average()
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"\ndata: {result['data']}; load average before {result['load_before']}, after {result['load_after']}")
    print("\n| packing | batches | real tokens | token slots | efficiency | data trained per epoch |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in result["packing"]:
        print(f"| {row['packing']} | {row['batches']} | {row['real_tokens']:,} | {row['slots']:,} | {row['efficiency']:.1%} | {row['epoch_coverage']:.1%} |")  # fmt: skip
    if "speed" in result:
        s = result["speed"]
        steady = f"{s['steady_steps_per_second']:.2f}" if s["steady_steps_per_second"] else "n/a"
        print(
            f"\ntiny recipe, {s['steps']} steps on {result['cpus']} CPUs: {steady} steps/s steady "
            f"(Trainer: {s['trainer_steps_per_second']} steps/s incl. the first step), "
            f"whole command {s['wall_s_whole_command']:.0f} s"
        )
    print(f"\nwritten: {rel(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
