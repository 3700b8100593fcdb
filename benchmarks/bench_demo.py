"""Time `make demo` cold (nothing built but the environments) and warm (everything reused).

    python benchmarks/bench_demo.py [--model models/small-bimedix-moe] [--teacher models/smollm2-135m-instruct]   (make bench-demo)

Cold: the demo's outputs (`python -m demo clean`) and both small models are removed first, so
`make demo` builds the models (`make small-model`), starts the teacher and runs every step. Warm: the
same command once more, which reuses every step. The target is a cold run within 15 minutes on a
2-core CPU. The load average is recorded beside each figure; results also go to logs/bench/demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bimedix.paths import SMALL_MODEL_DIR, SMALL_TEACHER_DIR  # noqa: E402

STEPS = ("data", "train", "eval", "serve")  # the teacher leaves no stamp; its time is in the total
TARGET_S = 15 * 60


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def make(*args: str) -> float:
    start = time.monotonic()
    subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, check=True)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SMALL_MODEL_DIR))
    parser.add_argument("--teacher", default=str(SMALL_TEACHER_DIR))
    args = parser.parse_args(argv)
    folders = {"SMALL_MODEL": args.model, "SMALL_TEACHER": args.teacher}
    variables = [f"{k}={v}" for k, v in folders.items()]

    make("demo-clean", *variables)
    for folder in folders.values():
        shutil.rmtree(folder if Path(folder).is_absolute() else ROOT / folder, ignore_errors=True)
    before = load()
    cold = make("demo", *variables)
    after = load()
    build = json.loads((ROOT / "logs" / "demo" / "data.json").read_text())["finished"]
    steps = {s: json.loads((ROOT / "logs" / "demo" / f"{s}.json").read_text())["seconds"] for s in STEPS}
    warm_load = load()
    warm = make("demo", *variables)
    answers = json.loads((ROOT / "logs" / "demo" / "serve_answers.json").read_text(encoding="utf-8"))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "cold_s": round(cold, 1),
        "cold_load_before": before,
        "cold_load_after": after,
        "cold_steps_s": steps,
        "data_step_finished": build,
        "warm_s": round(warm, 1),
        "warm_load": warm_load,
        "target_s": TARGET_S,
        "cold_within_target": cold <= TARGET_S,
        "answers": answers["answers"],
    }
    out = ROOT / "logs" / "bench" / "demo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\n| run | wall | load average (1/5/15 min) | steps (s) |")
    print("|---|---:|---|---|")
    print(
        f"| cold | {cold / 60:.1f} min | {before} before, {after} after | "
        + ", ".join(f"{k} {v}" for k, v in steps.items())
        + " (the rest: models, teacher, make) |"
    )
    print(f"| warm (all reused) | {warm:.1f} s | {warm_load} | - |")
    verdict = "within" if cold <= TARGET_S else "OVER"
    print(
        f"\ncold run {verdict} the {TARGET_S // 60}-minute target on {os.cpu_count()} CPUs; wrote {out.relative_to(ROOT)}"
    )
    return 0 if cold <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
