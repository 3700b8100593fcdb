"""Throughput of the LLM stages against an OpenAI-compatible server with a fixed latency per request.

    python benchmarks/llm_throughput.py [--latency 0.2] [--concurrency 64] [--requests 2000] [--items 500]

The fault-injection server (data_prep/llm/testing/fake_server.py) runs in its own process with a
fixed latency and no faults, so it does not share the client's event loop. Measured:
- sequential: a naive loop, one `openai.OpenAI` request after another (what a plain script does);
- client: the stage's LLMClient (limiter, retries, SQLite cache writes) through the stage's ordered
  window, `--concurrency` requests in flight, distinct prompts, a fresh cache;
- translate: the whole translation stage (protect, translate, check, back-translate, chrF) on
  generated MCQ items, two calls per item.
Reported: requests (or items) per second, the ratio to the server's capacity at that concurrency
(concurrency / latency requests per second), the speed-up over the sequential loop, the wall-clock
overhead per item beyond the ideal, and the client's CPU time per item. The load average is
recorded beside the figures: on a shared machine they are provisional. A JSON copy goes to
results/llm_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data_prep.llm.cache import Cache  # noqa: E402
from data_prep.llm.client import LLMClient  # noqa: E402
from data_prep.llm.config import ClientSettings, Endpoint, load_settings  # noqa: E402
from data_prep.llm.runner import ordered_map  # noqa: E402
from data_prep.llm.translate import TranslateRun, run_translation  # noqa: E402

SYMPTOMS = [
    "fever",
    "cough",
    "headache",
    "nausea",
    "vomiting",
    "fatigue",
    "dizziness",
    "rash",
    "wheezing",
    "palpitation",
]
DIAGNOSES = ["Influenza", "Asthma", "Pneumonia", "Meningitis"]


def start_server(latency: float, workdir: Path) -> tuple[subprocess.Popen, str]:
    ready = workdir / "server.url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "data_prep.llm.testing.fake_server",
            "--latency",
            str(latency),
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the fake server did not start")
        time.sleep(0.05)
    return process, ready.read_text().strip()


def sequential(base_url: str, count: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)
    start = time.perf_counter()
    for i in range(count):
        client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": f"sequential {i}"}], max_tokens=16
        )
    wall = time.perf_counter() - start
    return {"requests": count, "wall_s": round(wall, 3), "per_s": round(count / wall, 2)}


async def stage_client(base_url: str, count: int, concurrency: int, cache_path: Path) -> dict:
    endpoint = Endpoint(base_url, "fake-model", client=ClientSettings(concurrency=concurrency, timeout_s=30))
    with Cache(cache_path) as cache:
        async with LLMClient(endpoint, cache) as llm:

            async def work(i):
                return await llm.chat([{"role": "user", "content": f"client {i}"}], temperature=0.0, max_tokens=16)

            cpu, start = time.process_time(), time.perf_counter()
            done = 0
            async for _ in ordered_map(range(count), work, window=4 * concurrency):
                done += 1
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert done == count and llm.usage.completions == count and not llm.usage.retries
    return {"requests": count, "wall_s": round(wall, 3), "per_s": round(count / wall, 2), "cpu_s": round(cpu, 3)}


def write_items(path: Path, count: int) -> None:
    combos = itertools.product(itertools.combinations(SYMPTOMS, 2), itertools.permutations(DIAGNOSES))
    with open(path, "w", encoding="utf-8") as handle:
        for i, ((first, second), options) in enumerate(itertools.islice(combos, count)):
            row = {
                "id": f"b-{i:05d}",
                "question": f"A {20 + i % 60}-year-old man has {first} and {second}. What is the most likely diagnosis?",
                "options": "\n".join(f"({letter}) {o}" for letter, o in zip("ABCD", options, strict=True)),
                "answer": "(A)",
            }
            handle.write(json.dumps(row) + "\n")


def translate_stage(base_url: str, count: int, concurrency: int, workdir: Path) -> dict:
    source = workdir / "items.jsonl"
    write_items(source, count)
    endpoint = Endpoint(base_url, "fake-model", client=ClientSettings(concurrency=concurrency, timeout_s=30))
    run = TranslateRun(source, "mcq_json", workdir / "run", workdir / "translate.sqlite", progress=False)
    cpu, start = time.process_time(), time.perf_counter()
    manifest = asyncio.run(run_translation(run, load_settings(), endpoint))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert manifest["items"] == {"machine": count}, manifest["items"]
    calls = manifest["usage"]["completions_paid"]
    return {"items": count, "calls": calls, "wall_s": round(wall, 3), "per_s": round(count / wall, 2), "cpu_s": round(cpu, 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5000, help="requests for the client measurement")
    parser.add_argument("--items", type=int, default=1000, help="MCQ items for the translation measurement")
    parser.add_argument("--sequential", type=int, default=20, help="requests for the sequential loop")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "llm_throughput.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as scratch:
        workdir = Path(scratch)
        server, base_url = start_server(args.latency, workdir)
        try:
            seq = sequential(base_url, args.sequential)
            client = asyncio.run(stage_client(base_url, args.requests, args.concurrency, workdir / "client.sqlite"))
            translate = translate_stage(base_url, args.items, args.concurrency, workdir)
        finally:
            server.terminate()
            server.wait(timeout=30)
    capacity = args.concurrency / args.latency  # requests per second the server can answer at this concurrency
    item_capacity = capacity / 2  # a translated item is two sequential calls
    report = {
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "server_capacity_per_s": capacity,
        "sequential": seq,
        "client": client
        | {
            "capacity_ratio": round(client["per_s"] / capacity, 3),
            "speedup_vs_sequential": round(client["per_s"] / seq["per_s"], 1),
            "overhead_per_item_ms": round((client["wall_s"] - args.requests / capacity) / args.requests * 1000, 3),
            "cpu_per_item_ms": round(client["cpu_s"] / args.requests * 1000, 3),
            # what one core with nothing else to do could sustain: the figure a shared machine cannot show
            "cpu_bound_ceiling_ratio": round(args.requests / client["cpu_s"] / capacity, 3),
        },
        "translate": translate
        | {
            "capacity_ratio": round(translate["per_s"] / item_capacity, 3),
            "speedup_vs_sequential": round(translate["per_s"] / (seq["per_s"] / 2), 1),
            "overhead_per_item_ms": round((translate["wall_s"] - args.items / item_capacity) / args.items * 1000, 3),
            "cpu_per_item_ms": round(translate["cpu_s"] / args.items * 1000, 3),
            "cpu_bound_ceiling_ratio": round(args.items / translate["cpu_s"] / item_capacity, 3),
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    c, t = report["client"], report["translate"]
    print(f"server: {args.latency * 1000:.0f} ms per request, capacity {capacity:.0f} requests/s at concurrency {args.concurrency}")  # fmt: skip
    print(f"sequential loop: {seq['per_s']:.2f} requests/s")
    print("| measurement | rate | capacity ratio | speed-up vs sequential | overhead per item | client CPU per item | CPU-bound ceiling |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print(f"| client, {args.requests} requests | {c['per_s']:.1f} requests/s | {c['capacity_ratio']:.1%} | {c['speedup_vs_sequential']:.1f}x | {c['overhead_per_item_ms']:.2f} ms | {c['cpu_per_item_ms']:.2f} ms | {c['cpu_bound_ceiling_ratio']:.0%} |")  # fmt: skip
    print(f"| translate, {args.items} MCQ items | {t['per_s']:.1f} items/s | {t['capacity_ratio']:.1%} | {t['speedup_vs_sequential']:.1f}x | {t['overhead_per_item_ms']:.2f} ms | {t['cpu_per_item_ms']:.2f} ms | {t['cpu_bound_ceiling_ratio']:.0%} |")  # fmt: skip
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']} ({report['cpus']} CPUs); written to {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
