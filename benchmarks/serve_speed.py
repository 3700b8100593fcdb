"""What the FastChat stack adds to a reply, and what it sustains with 16 clients at once.

    make bench-serve                      # the tiny model, 20 runs, 16 clients
    .venv-serve/bin/python -m benchmarks.serve_speed --model DIR --runs 30 --out logs/bench/serve_speed.json

Latency: one chat reply of 16 and of 64 tokens through the OpenAI API (openai client -> API server
-> controller -> worker) against a direct `model.generate` of the same model in this process:
the same prompt token ids (the chat template with the default system message), greedy, the token
count forced (min_new_tokens = max_new_tokens directly; through the API the reply must end by
length, checked, and its text must equal the direct reply's). The runs alternate, stack then
direct, so that load from other users of the machine falls on both alike; medians and ratios.
The direct side runs in a child process started as the stack's parts are (its own session), and
both sides get the same OMP_WAIT_POLICY (--omp-wait-policy, PASSIVE by default): on a shared CPU,
libgomp's default spin-waiting made the direct generate up to 8x slower under load while the
worker, which generates on another thread, was spared, and that flattered the stack.
Also shown: FastChat's own generation loop in this process (no HTTP), to separate the loop from
the hops; this process freezes its gc after loading as the worker does. --stock-gc serves (and
measures the loop) without the gc.freeze fix of serve/compat.py, to show what the fix saves.

Throughput: --clients threads each send --requests chat requests of --throughput-tokens tokens;
tokens per second and latency percentiles, against the direct generate's tokens per second.

The figures are provisional on a shared machine: the output records `uptime` before and after.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bimedix.paths import ROOT, TINY_MODEL_DIR
from serve.stack import ServeStack

PROMPT = [{"role": "user", "content": "Describe the first-line treatment of type 2 diabetes and its side effects."}]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


class Direct:
    """The same model in this process: transformers' generate, and FastChat's own loop."""

    def __init__(self, model_dir: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from serve.conversation import reference_messages

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        ids = self.tokenizer.apply_chat_template(reference_messages(PROMPT), tokenize=True, return_dict=False)
        self.input_ids = torch.tensor([ids])
        self.prompt_text = self.tokenizer.decode(ids[1:])  # what the worker tokenizes (it adds <s>)

    def generate(self, tokens: int) -> tuple[float, str]:
        start = time.perf_counter()
        with self.torch.inference_mode():
            out = self.model.generate(
                self.input_ids,
                attention_mask=self.torch.ones_like(self.input_ids),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        elapsed = time.perf_counter() - start
        new = out[0, self.input_ids.shape[1] :]
        assert len(new) == tokens, f"direct generate gave {len(new)} tokens, not {tokens}"
        return elapsed, self.tokenizer.decode(new, skip_special_tokens=True)

    def fastchat_loop(self, tokens: int) -> float:
        from fastchat.serve.inference import generate_stream

        params = {"prompt": self.prompt_text, "temperature": 0.0, "max_new_tokens": tokens, "echo": False}
        start = time.perf_counter()
        for _ in generate_stream(self.model, self.tokenizer, params, "cpu", 4096, 2):
            pass
        return time.perf_counter() - start


class DirectProcess:
    """Direct in a child process in a session of its own, like the stack's parts; one JSON line per call."""

    def __init__(self, model_dir: Path, stock_gc: bool, env: dict[str, str]):
        from serve.stack import _pdeathsig

        command = [sys.executable, "-m", "benchmarks.serve_speed", "--direct-child", "--model", str(model_dir)]
        self.process = subprocess.Popen(
            command + (["--stock-gc"] if stock_gc else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, **env},
            start_new_session=True,
            preexec_fn=_pdeathsig,
        )

    def _call(self, op: str, tokens: int) -> dict:
        self.process.stdin.write(json.dumps({"op": op, "tokens": tokens}) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT) :])
        raise SystemExit(f"the direct-generate process exited ({self.process.wait()})")

    def generate(self, tokens: int) -> tuple[float, str]:
        result = self._call("generate", tokens)
        return result["seconds"], result["text"]

    def fastchat_loop(self, tokens: int) -> float:
        return self._call("loop", tokens)["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


RESULT = "RESULT "


def direct_child(model_dir: Path, stock_gc: bool) -> int:
    direct = Direct(model_dir)
    if not stock_gc:  # as the worker does after its load (serve/compat.py), so the loop column compares
        gc.collect()
        gc.freeze()
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "generate":
            seconds, text = direct.generate(request["tokens"])
            result = {"seconds": seconds, "text": text}
        else:
            result = {"seconds": direct.fastchat_loop(request["tokens"])}
        print(RESULT + json.dumps(result, ensure_ascii=False), flush=True)
    return 0


def through_api(client, model: str, tokens: int) -> tuple[float, str, str, int]:
    """(seconds, text, finish reason, tokens generated) of one chat reply through the stack."""
    start = time.perf_counter()
    reply = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=tokens, temperature=0.0)
    elapsed = time.perf_counter() - start
    choice = reply.choices[0]
    # FastChat's usage.completion_tokens is one short when a reply ends by length (it reports the
    # index of the last step); a reply that ends by length has exactly max_tokens tokens.
    generated = tokens if choice.finish_reason == "length" else reply.usage.completion_tokens
    return elapsed, choice.message.content, choice.finish_reason, generated


def latency(direct: DirectProcess, client, model: str, tokens: int, runs: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        direct.generate(tokens)
        through_api(client, model, tokens)
        direct.fastchat_loop(tokens)
    stack, plain, loop, mismatches = [], [], [], 0
    for _ in range(runs):
        seconds, text, finish, _ = through_api(client, model, tokens)
        if finish != "length":
            raise SystemExit(f"the reply ended by {finish!r} before {tokens} tokens; pick a longer-answer prompt")
        stack.append(seconds)
        seconds, direct_text = direct.generate(tokens)
        plain.append(seconds)
        mismatches += text.strip() != direct_text.strip()
        loop.append(direct.fastchat_loop(tokens))
    return {
        "tokens": tokens,
        "runs": runs,
        "direct_generate_ms": round(median_ms(plain), 2),
        "fastchat_loop_ms": round(median_ms(loop), 2),
        "stack_ms": round(median_ms(stack), 2),
        "stack_over_direct": round(median_ms(stack) / median_ms(plain), 3),
        "stack_p90_ms": round(percentile_ms(stack, 0.9), 2),
        "direct_p90_ms": round(percentile_ms(plain, 0.9), 2),
        "replies_differing_from_direct": mismatches,
        "stack_runs_ms": [round(x * 1000, 1) for x in stack],
        "direct_runs_ms": [round(x * 1000, 1) for x in plain],
        "fastchat_loop_runs_ms": [round(x * 1000, 1) for x in loop],
    }


def throughput(client, model: str, clients: int, requests: int, tokens: int) -> dict:
    latencies: list[float] = []
    generated: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one_client():
        for _ in range(requests):
            try:
                seconds, _, _, count = through_api(client, model, tokens)
            except Exception as err:  # counted and reported, never hidden
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                latencies.append(seconds)
                generated.append(count)

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    done = len(latencies)
    return {
        "clients": clients,
        "requests": clients * requests,
        "completed": done,
        "errors": errors[:5],
        "tokens_per_reply": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(sum(generated) / wall, 1),
        "requests_per_s": round(done / wall, 2),
        "latency_p50_ms": round(percentile_ms(latencies, 0.5), 1) if latencies else None,
        "latency_p95_ms": round(percentile_ms(latencies, 0.95), 1) if latencies else None,
    }


def markdown(result: dict) -> str:
    lines = [
        "| reply | direct `generate` | FastChat loop, no HTTP | through the stack | stack / direct |",
        "|---|---|---|---|---|",
    ]
    for row in result["latency"]:
        lines.append(
            f"| {row['tokens']} tokens | {row['direct_generate_ms']:.1f} ms | {row['fastchat_loop_ms']:.1f} ms "
            f"| {row['stack_ms']:.1f} ms | {row['stack_over_direct']:.2f} |"
        )
    t = result["throughput"]
    lines += [
        "",
        f"{t['clients']} concurrent clients, {t['requests']} replies of {t['tokens_per_reply']} tokens: "
        f"{t['tokens_per_s']} tokens/s ({t['requests_per_s']} replies/s), latency p50 {t['latency_p50_ms']} ms, "
        f"p95 {t['latency_p95_ms']} ms; direct generate alone: {t['direct_tokens_per_s']} tokens/s "
        f"(ratio {t['over_direct']}). Errors: {len(t['errors'])}.",
        "",
        f"load: before `{result['uptime_before']}`, after `{result['uptime_after']}`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=TINY_MODEL_DIR)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--throughput-tokens", type=int, default=64)
    parser.add_argument("--stock-gc", action="store_true", help="serve without the gc.freeze fix")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "bench" / "serve_speed.json")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", help="OMP_WAIT_POLICY of both sides (default PASSIVE)")
    parser.add_argument("--direct-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.direct_child:
        return direct_child(args.model, args.stock_gc)
    if args.runs < 20:
        print("note: fewer than 20 runs; the README's figures use at least 20", file=sys.stderr)

    import openai
    import torch

    result = {
        "model": str(args.model),
        "uptime_before": uptime(),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "stock_gc": args.stock_gc,
        "omp_wait_policy": args.omp_wait_policy,
    }
    env = {"OMP_WAIT_POLICY": args.omp_wait_policy}
    direct = DirectProcess(args.model, args.stock_gc, env)
    if args.stock_gc:
        env["BIMEDIX_SERVE_COMPAT_SKIP"] = "gc_freeze"
    with ServeStack(args.model, web_ui=False, env=env, device="cpu") as stack:
        client = openai.OpenAI(base_url=stack.api_base, api_key="none", max_retries=0, timeout=600)
        result["latency"] = [latency(direct, client, stack.model_name, n, args.runs) for n in args.tokens]
        result["throughput"] = throughput(client, stack.model_name, args.clients, args.requests, args.throughput_tokens)
    direct_times = [direct.generate(args.throughput_tokens)[0] for _ in range(5)]
    direct.close()
    direct_tps = args.throughput_tokens / statistics.median(direct_times)
    result["throughput"]["direct_tokens_per_s"] = round(direct_tps, 1)
    result["throughput"]["over_direct"] = round(result["throughput"]["tokens_per_s"] / direct_tps, 2)
    result["uptime_after"] = uptime()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown(result))
    print(f"\nwrote {args.out}")
    worst = max(row["stack_over_direct"] for row in result["latency"])
    if worst > 1.5:
        print(f"over budget: the stack adds {100 * (worst - 1):.0f}% (target: at most 50%)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
