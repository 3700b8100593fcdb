"""How long the stack takes to answer again after its model worker is killed with -9 under load.

    make bench-serve-recovery                       # the tiny model, 32 clients x 10 replies, 1 worker
    .venv-serve/bin/python -m benchmarks.serve_recovery --clients 32 --requests 10 --workers 1

The probe of issue 16: --clients threads each want --requests chat replies of --tokens tokens
through the OpenAI API (loopback only). Once a share of all the replies has come back
(--kill-after, 0.3 by default), the first worker is killed with SIGKILL, as the OOM killer would.
Nobody restarts anything by hand: the stack's supervisor notices, restarts the worker on its port
and the worker registers again. A client whose request fails waits --pause seconds and sends the
next one; each client stops when it has its replies or at --deadline seconds, so the run always
ends. Measured from the kill: the first failed request and its status, the first reply of a
request sent after the kill, the first 200 of GET /ready (polled every 0.1 s), and what the
stack's supervisor logged. The figures are provisional on a shared machine: the output records
`uptime` before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from bimedix.paths import ROOT, TINY_MODEL_DIR
from serve.stack import ServeStack, http

PROMPT = [{"role": "user", "content": "What are the warning signs of diabetic ketoacidosis?"}]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def probe(stack: ServeStack, args: argparse.Namespace) -> dict:
    url = stack.api_base + "/chat/completions"
    headers = {"Authorization": f"Bearer {stack.api_key}"} if stack.api_key else {}
    body = {"model": stack.model_name, "messages": PROMPT, "max_tokens": args.tokens, "temperature": 0}
    results: list[tuple[float, float, int]] = []  # (sent, answered, status), monotonic seconds
    lock = threading.Lock()
    wanted = args.clients * args.requests
    killed: dict[str, float] = {}
    ready_at: list[float] = []
    start = time.monotonic()
    deadline = start + args.deadline

    def client() -> None:
        replies = 0
        while replies < args.requests and time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                status, _ = http("POST", url, body, headers=headers, timeout=120)
            except OSError:
                status = 0  # no HTTP answer at all
            with lock:
                results.append((sent, time.monotonic(), status))
            if status == 200:
                replies += 1
            else:
                time.sleep(args.pause)

    def killer() -> None:
        while time.monotonic() < deadline:
            with lock:
                done = sum(1 for r in results if r[2] == 200)
            if done >= args.kill_after * wanted:
                worker = stack.workers[0]
                killed.update(pid=worker.pid, at=time.monotonic())
                os.kill(worker.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        # GET /ready from the kill on: when does the API say a model answers again?
        seen_down = False
        while time.monotonic() < deadline and "at" in killed:
            ok = stack.ready(timeout=5)
            seen_down |= not ok
            if ok and seen_down:
                ready_at.append(time.monotonic())
                return
            time.sleep(0.1)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    watcher = threading.Thread(target=killer)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in [*threads, watcher]:
        thread.join()
    end = time.monotonic()
    if "at" not in killed:
        raise SystemExit("error: the worker was never killed (too few replies before the deadline)")
    kill = killed["at"]
    failures = [r for r in results if r[2] != 200]
    after = [r for r in results if r[2] == 200 and r[0] >= kill]
    failed_after = [r for r in failures if r[1] >= kill]
    return {
        "clients": args.clients,
        "requests_per_client": args.requests,
        "tokens": args.tokens,
        "workers": len(stack.workers),
        "replies": sum(1 for r in results if r[2] == 200),
        "replies_wanted": wanted,
        "requests_sent": len(results),
        "failures_by_status": dict(Counter(str(r[2]) for r in failures)),
        "killed_pid": killed["pid"],
        "kill_at_s": round(kill - start, 2),
        "first_failure_after_kill_s": round(min(r[1] for r in failed_after) - kill, 3) if failed_after else None,
        "last_failure_after_kill_s": round(max(r[1] for r in failed_after) - kill, 3) if failed_after else None,
        "first_reply_sent_after_kill_s": round(min(r[1] for r in after) - kill, 2) if after else None,
        "ready_again_after_kill_s": round(ready_at[0] - kill, 2) if ready_at else None,
        "run_s": round(end - start, 2),
        "supervisor": list(stack.events),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_recovery", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=TINY_MODEL_DIR)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10, help="replies each client wants")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--kill-after", type=float, default=0.3, help="share of the replies before the kill")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds a client waits after a failed request")
    parser.add_argument("--deadline", type=float, default=300, help="seconds after which every client stops")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "bench" / "serve_recovery.json")
    args = parser.parse_args(argv)
    before = uptime()
    env = {"OMP_WAIT_POLICY": "PASSIVE"}
    log_dir = ROOT / "logs" / "bench" / f"serve-recovery-{time.strftime('%Y%m%d-%H%M%S')}"
    with ServeStack(args.model, workers=args.workers, web_ui=False, env=env, device="cpu", log_dir=log_dir) as stack:
        result = probe(stack, args)
    result |= {"uptime_before": before, "uptime_after": uptime(), "logs": str(log_dir)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
