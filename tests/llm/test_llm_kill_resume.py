"""A run killed with SIGKILL mid-way resumes with no finished result lost and no finished call paid twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

from bimedix.paths import ROOT
from data_prep.llm.cache import Cache, cache_key
from data_prep.llm.testing.fake_server import FakeServer

ITEMS = 40  # two calls each: the translation and its back-translation
DIAGNOSES = ["Influenza", "Asthma", "Pneumonia", "Meningitis"]
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


def write_items(path):
    """Distinct wording per item: numbers alone would not do, they become the same placeholders."""
    pairs = [(a, b) for a in SYMPTOMS for b in SYMPTOMS if a < b][:ITEMS]
    with open(path, "w", encoding="utf-8") as handle:
        for i, (first, second) in enumerate(pairs):
            row = {
                "id": f"k-{i:03d}",
                "question": f"A {20 + i}-year-old man has {first} and {second}. What is the most likely diagnosis?",
                "options": "\n".join(f"({letter}) {d}" for letter, d in zip("ABCD", DIAGNOSES, strict=True)),
                "answer": "(A)",
            }
            handle.write(json.dumps(row) + "\n")


def cache_rows(path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_mid_run_then_resume(tmp_path):
    source, out, cache_path = tmp_path / "in.jsonl", tmp_path / "run", tmp_path / "cache.sqlite"
    write_items(source)
    with FakeServer(latency=0.1) as server:
        env = os.environ | {
            "PYTHONPATH": str(ROOT),
            "BIMEDIX_LLM_BASE_URL": server.base_url,
            "BIMEDIX_LLM_MODEL": server.model,
        }
        command = [
            sys.executable,
            "-m",
            "data_prep.llm",
            "translate",
            "--input",
            str(source),
            "--out",
            str(out),
            "--cache",
            str(cache_path),
            "--concurrency",
            "4",
            "--no-progress",
        ]
        first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while cache_rows(cache_path) < 20:
            assert first.poll() is None, first.stdout.read().decode()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
        first_log = list(server.log)
        with Cache(cache_path) as cache:
            finished = cache.keys()
        assert 20 <= len(finished) < 2 * ITEMS, "the kill did not land mid-run"
        assert not (out / "translated.jsonl").exists()  # outputs are written whole or not at all

        second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        second_log = server.log[len(first_log) :]

    def key(entry):
        body = entry.body
        params = {k: body[k] for k in ("temperature", "max_tokens", "seed") if k in body}
        return cache_key(f"{server.base_url}|{server.model}", body["messages"], params)

    # every call finished before the kill was answered once, and never asked again
    replied_first = Counter(key(e) for e in first_log if e.replied)
    assert all(replied_first[k] == 1 for k in finished)
    assert not finished & {key(e) for e in second_log}
    # the second run paid exactly for what was missing, and lost nothing
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["usage"]["completions_paid"] == 2 * ITEMS - len(finished)
    assert manifest["usage"]["cache_hits"] == len(finished)
    assert manifest["items"] == {"machine": ITEMS}
    assert len((out / "translated.jsonl").read_text().splitlines()) == ITEMS
    assert not list(out.glob(".*.tmp"))  # the killed run's temporary files are gone
