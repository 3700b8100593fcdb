"""Wall time and peak memory of the 18-task BiMediX evaluation of the tiny model, per backend.

    python benchmarks/bench_eval.py [--backends hf,api,vllm] [--repeat 3] [--api-url URL] [--out results/bench]

Each measurement runs `python -m eval_tasks run` as a fresh process on the embedded sample (108
questions, 420 log-likelihood requests), as `make eval` does, and reads back the evaluation's own
wall time from results.json. The machine's load (`uptime`) is recorded beside the figures: on a
shared CPU they are provisional. Backends that cannot run here are reported as such, not skipped
silently: vllm needs a CUDA host; api needs API_URL or the serve stage's serve/stack.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def unavailable(backend: str, api_url: str | None) -> str | None:
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (needs a CUDA host)"
    if backend == "api" and not api_url and not (ROOT / "serve" / "stack.py").exists():
        return "no API_URL and no serve/stack.py in this checkout"
    return None


def measure(backend: str, model: str, api_url: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as out:
        cmd = [sys.executable, "-m", "eval_tasks", "run", "--model", model, "--backend", backend, "--results-dir", out, "--run-name", "bench", "--no-samples", "--tasks", "bimedix_bilingual"]  # fmt: skip
        if api_url:
            cmd += ["--api-url", api_url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **OFFLINE}, capture_output=True, text=True)
        wall = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"bench-eval: {backend} failed: {done.stderr.strip().splitlines()[-1:]}")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        results = json.loads((Path(out) / "bench" / "results.json").read_text(encoding="utf-8"))
    return {
        "command_wall_s": round(wall, 1),
        "evaluate_wall_s": results["bimedix"]["wall_time_s"],
        "questions": results["bimedix"]["questions"],
        "peak_rss_mib": round(max(peak_kib, before) / 1024),  # the largest child so far (ru_maxrss is per child)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="hf,api,vllm")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default=str(ROOT / "models" / "tiny-bimedix-moe"))
    parser.add_argument("--api-url", default=os.environ.get("API_URL") or None)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = parser.parse_args(argv)
    report = {"load_before": uptime(), "cpu_count": os.cpu_count(), "python": platform.python_version(), "backends": {}}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        reason = unavailable(backend, args.api_url)
        if reason:
            report["backends"][backend] = {"status": f"not measured: {reason}"}
            continue
        runs = [measure(backend, args.model, args.api_url) for _ in range(args.repeat)]
        report["backends"][backend] = {
            "status": "measured",
            "runs": runs,
            "command_wall_s_median": statistics.median(r["command_wall_s"] for r in runs),
            "evaluate_wall_s_median": statistics.median(r["evaluate_wall_s"] for r in runs),
        }
    report["load_after"] = uptime()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"load before: {report['load_before']}")
    print(
        "| backend | `python -m eval_tasks run`, s (median) | evaluation only, s (median) | questions | peak RSS, MiB |"
    )
    print("|---|---:|---:|---:|---:|")
    for backend, entry in report["backends"].items():
        if entry["status"] != "measured":
            print(f"| {backend} | {entry['status']} | | | |")
            continue
        print(
            f"| {backend} | {entry['command_wall_s_median']} | {entry['evaluate_wall_s_median']} | "
            f"{entry['runs'][0]['questions']} | {max(r['peak_rss_mib'] for r in entry['runs'])} |"
        )
    print(f"load after: {report['load_after']}")
    print(f"wrote {args.out / 'eval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
