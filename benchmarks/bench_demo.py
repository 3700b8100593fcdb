"""Time `make demo` cold (nothing built but the environments) and warm (everything reused).

    python benchmarks/bench_demo.py [--tiny-model models/tiny-bimedix-moe]      (make bench-demo)

Cold: the demo's outputs (`python -m bimedix.demo clean`) and the tiny model are removed first, so
every step runs, the tiny model is built again and the teacher starts. Warm: the same command once
more, which reuses every step. The target is a cold run under 20 minutes on a 2-core CPU. The load
average is recorded beside each figure (other people's jobs move them); results also go to
logs/bench/demo.json.
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

from bimedix.paths import TINY_MODEL_DIR  # noqa: E402

STEPS = ("setup", "data", "train", "eval", "serve")  # the teacher leaves no stamp; its time is in the total
TARGET_S = 20 * 60


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def demo(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "bimedix.demo", *args], cwd=ROOT, env=env, check=True)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-model", default=str(TINY_MODEL_DIR))
    args = parser.parse_args(argv)
    tiny = Path(args.tiny_model) if Path(args.tiny_model).is_absolute() else ROOT / args.tiny_model

    demo("clean", "--tiny-model", str(tiny))
    shutil.rmtree(tiny, ignore_errors=True)
    before = load()
    cold = demo("all", "--tiny-model", str(tiny))
    after = load()
    steps = {s: json.loads((ROOT / "logs" / "demo" / f"{s}.json").read_text())["seconds"] for s in STEPS}
    warm_load = load()
    warm = demo("all", "--tiny-model", str(tiny))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "cold_s": round(cold, 1),
        "cold_load_before": before,
        "cold_load_after": after,
        "cold_steps_s": steps,
        "warm_s": round(warm, 1),
        "warm_load": warm_load,
        "target_s": TARGET_S,
        "cold_under_target": cold < TARGET_S,
    }
    out = ROOT / "logs" / "bench" / "demo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| run | wall | load average (1/5/15 min) | steps (s) |")
    print("|---|---:|---|---|")
    print(
        f"| cold | {cold:.0f} s | {before} before, {after} after | "
        + ", ".join(f"{k} {v}" for k, v in steps.items())
        + " |"
    )
    print(f"| warm (all reused) | {warm:.1f} s | {warm_load} | - |")
    verdict = "under" if cold < TARGET_S else "OVER"
    print(
        f"\ncold run {verdict} the {TARGET_S // 60}-minute target on {os.cpu_count()} CPUs; wrote {out.relative_to(ROOT)}"
    )
    return 0 if cold < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
