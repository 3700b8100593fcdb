"""The tiny recipe on several CPU processes against one: wall time, loss parity, a killed rank, resume.

    python benchmarks/bench_distributed.py [--steps 10] [--save-steps 2]   (make bench-distributed)

Every run is `python -m recipes train tiny` on the project's own fixture data (tests/recipes/fixtures),
the command a user runs, with the same number of steps, checkpoints every --save-steps, no eval:

- one:   one process (the reference);
- ddp:   `--launcher-args "--num_processes 2"` (accelerate, DDP over gloo, 1 thread each);
- nodes: two `--launcher torchrun` invocations, `--nnodes 2 --nproc_per_node 1 --node_rank 0/1
         --rdzv_backend c10d --rdzv_endpoint 127.0.0.1:PORT` (the zero2-2nodes README line without
         DeepSpeed, which needs CUDA), 1 thread each;
- kill:  ddp and nodes again, rank 1 SIGKILLed once checkpoint --save-steps is complete: the time
         until every process has exited and the launcher's last words; then the same command with
         `--set resume_from_checkpoint=<latest complete checkpoint>` to the end, compared with the
         uninterrupted run.

Parity: each step's logged loss and the final adapter's largest difference from the one-process
run. FSDP2 and Ray Train do not run on a CPU (recipes/README.md says why, from the tools' source).
Results go to logs/bench/distributed.json; the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recipes.trainlog import records  # noqa: E402

FIXTURES = ROOT / "tests" / "recipes" / "fixtures"
_RANK_PID = re.compile(r"bimedix: training process rank (\d+) of \d+ \(pid (\d+)\)")


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


class Bench:
    def __init__(self, work: Path, steps: int, save_steps: int, port: int) -> None:
        self.work, self.steps, self.save_steps, self.port = work, steps, save_steps, port
        self.data = work / "data"
        (self.data / "processed" / "bilingual").mkdir(parents=True)
        for name in ("train.jsonl", "val.jsonl"):
            shutil.copy(FIXTURES / name, self.data / "processed" / "bilingual" / name)

    def command(self, root: Path, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "recipes", "train", "tiny", "--data-dir", str(self.data), "--output-root", str(root),
            "--set", f"max_steps={self.steps}", "--set", "eval_strategy=no", "--unset", "eval_steps",
            "--set", "save_strategy=steps", "--set", f"save_steps={self.save_steps}", *extra,
        ]  # fmt: skip

    def start(self, name: str, *extra: str, node: int | None = None) -> tuple[subprocess.Popen, Path]:
        root = self.work / name
        args: tuple[str, ...] = extra
        if node is not None:
            rdzv = f"--nnodes 2 --nproc_per_node 1 --node_rank {node} --rdzv_backend c10d --rdzv_endpoint 127.0.0.1:{self.port}"  # fmt: skip
            args = (*extra, "--launcher", "torchrun", f"--launcher-args={rdzv}", "--cpu-threads", "1")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AXOLOTL_DO_NOT_TRACK": "1"}
        out = open(self.work / f"{name}.out", "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(self.command(root, *args), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT), root / "tiny"  # fmt: skip

    def launch(self, name: str, kind: str, *extra: str) -> list[tuple[subprocess.Popen, Path]]:
        if kind == "nodes":
            return [self.start(f"{name}-node{n}", *extra, node=n) for n in (0, 1)]
        return [self.start(name, *extra, *(["--launcher-args=--num_processes 2"] if kind == "ddp" else []))]

    def run(self, name: str, kind: str, *extra: str) -> dict:
        started = time.monotonic()
        procs = self.launch(name, kind, *extra)
        codes = [p.wait(timeout=1800) for p, _ in procs]
        # global rank 0 logs the metrics; with c10d torchrun ignores --node_rank, so it may be either node
        logged = [r for _, r in procs if summary(r)["losses"]] or [procs[0][1]]
        result = {"wall_s": round(time.monotonic() - started, 1), "exit": codes, "run": str(logged[0])}
        result.update(summary(logged[0]))
        return result

    def kill(self, name: str, kind: str) -> dict:
        """Start, SIGKILL rank 1 once checkpoint save_steps is complete, time the rest's exit, resume."""
        procs = self.launch(name, kind)
        logs = [r / "train.log" for _, r in procs]
        # global rank 0 saves the checkpoints: with c10d that may be either node's output folder
        ready = [r / "adapter" / f"checkpoint-{self.save_steps}" / "trainer_state.json" for _, r in procs]
        victim = None
        while victim is None:
            if any(p.poll() is not None for p, _ in procs):
                raise SystemExit(f"{name}: training ended before checkpoint-{self.save_steps}: {logs}")
            pids = dict(m.groups() for log in logs if log.exists() for m in _RANK_PID.finditer(log.read_text("utf-8", errors="replace")))  # fmt: skip
            if any(path.exists() for path in ready) and "1" in pids:
                victim = int(pids["1"])
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        codes = [p.wait(timeout=1800) for p, _ in procs]
        stopped = time.monotonic() - killed
        text = "\n".join(log.read_text("utf-8", errors="replace") for log in logs)
        before = [r["loss"] for r in records(text) if "loss" in r]
        complete = sorted(
            (c for _, r in procs for c in (r / "adapter").glob("checkpoint-*") if (c / "trainer_state.json").exists()),
            key=lambda c: int(c.name.split("-")[1]),
        )
        said = [(self.work / f"{r.parent.name}.out").read_text("utf-8").strip().splitlines()[-1:] for _, r in procs]
        causes = [line.strip() for line in text.splitlines() if "exitcode" in line and "SIG" in line]
        last_lines = [*causes, *(line for lines in said for line in lines)]
        for _, r in procs:
            shutil.copytree(r.parent, self.work / f"{r.parent.name}-killed", dirs_exist_ok=True)
        resumed = self.run(name, kind, "--set", f"resume_from_checkpoint={complete[-1]}")
        return {
            "killed_pid": victim,
            "killed_after_steps": len(before),
            "stopped_s": round(stopped, 1),
            "exit": codes,
            "messages": last_lines,
            "resumed_from": complete[-1].name,
            "resume": resumed,
        }


def summary(run: Path) -> dict:
    log = (run / "train.log").read_text("utf-8", errors="replace") if (run / "train.log").exists() else ""
    rows = records(log)
    losses = [r["loss"] for r in rows if "loss" in r]
    runtime = [r["train_runtime"] for r in rows if "train_runtime" in r]
    return {"losses": losses, "train_runtime_s": runtime[-1] if runtime else None}


def adapter_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    x, y = (
        load_file(a / "adapter" / "adapter_model.safetensors"),
        load_file(b / "adapter" / "adapter_model.safetensors"),
    )
    if x.keys() != y.keys():
        raise SystemExit(f"the adapters of {a} and {b} hold different tensors")
    return max(float((x[k] - y[k]).abs().max()) for k in x)


def parity(run: dict, reference: dict, first_step: int = 0) -> dict:
    """`run` logged the steps after `first_step` (a resumed run), `reference` every step."""
    pairs = list(zip(run["losses"], reference["losses"][first_step:], strict=False))
    same = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
    return {
        "steps": len(pairs),
        "steps_with_the_same_logged_loss": same,
        "loss_max_abs_diff": round(max(abs(a - b) for a, b in pairs), 4) if pairs else None,
        "adapter_max_abs_diff": adapter_diff(Path(run["run"]), Path(reference["run"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--save-steps",
        type=int,
        default=2,
        help="2: the kill and resume at an epoch boundary of the fixture data on 2 ranks; 3: one step inside an epoch (the resume the plugin fixed: recipes/README.md)",
    )
    parser.add_argument("--port", type=int, default=29541)
    parser.add_argument("--only", nargs="*", default=["one", "ddp", "nodes", "kill-ddp", "kill-nodes"])
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders (printed)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    bench = Bench(work, args.steps, args.save_steps, args.port)
    result: dict = {"steps": args.steps, "save_steps": args.save_steps, "cores": os.cpu_count(), "load_before": load()}
    try:
        runs: dict[str, dict] = {}
        for name in ("one", "ddp", "nodes"):
            if name in args.only or name == "one":
                runs[name] = bench.run(name, name)
                print(f"{name}: {runs[name]['wall_s']} s wall, train_runtime {runs[name]['train_runtime_s']} s, exit {runs[name]['exit']}", flush=True)  # fmt: skip
        for name, reference in (("ddp", "one"), ("nodes", "one"), ("nodes", "ddp")):
            if name in runs and reference in runs:
                runs[name][f"parity_with_{reference}"] = parity(runs[name], runs[reference])
                print(f"{name} vs {reference}: {runs[name][f'parity_with_{reference}']}", flush=True)
        for kind in ("ddp", "nodes"):
            if f"kill-{kind}" in args.only:
                killed = bench.kill(f"kill-{kind}", kind)
                reference = runs.get(kind) or runs["one"]  # the same launch, uninterrupted
                first = int(killed["resumed_from"].split("-")[1])
                killed["resume"]["parity_with_uninterrupted"] = parity(killed["resume"], reference, first)
                runs[f"kill-{kind}"] = killed
                print(f"kill-{kind}: stopped {killed['stopped_s']} s after the kill, exit {killed['exit']}, resumed from {killed['resumed_from']}: {killed['resume']['parity_with_uninterrupted']}", flush=True)  # fmt: skip
        result["runs"] = runs
        result["load_after"] = load()
    finally:
        if args.keep:
            print(f"runs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "logs" / "bench" / "distributed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
