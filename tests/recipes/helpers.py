"""Shared by the recipes tests: the fixture data and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bimedix.paths import ROOT

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TRAIN_STEPS = 2  # within the first epoch of the fixture data (5 packed rows): see test_ddp.py


def fixture_rows(name: str = "train.jsonl") -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AXOLOTL_DO_NOT_TRACK": "1"}
    return subprocess.run(
        [sys.executable, "-m", "recipes", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
