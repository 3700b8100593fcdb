"""Fixtures of the serving tests: one shared stack on loopback (tiny model, two workers, API keys, web UI).

Run with the serving environment: .venv-serve/bin/python -m pytest tests/serve
Every stack logs under logs/serve/tests/ (printed on failure), so a failing part can be read.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import pytest

# FastChat writes log files into LOGDIR ("." by default) when its modules are imported here.
os.environ.setdefault("LOGDIR", "")

from bimedix.paths import ROOT
from serve.stack import ServeStack

API_KEY = "test-key-b1m3d1x"
LOG_ROOT = ROOT / "logs" / "serve" / "tests"
ARTIFACTS = ROOT / "logs" / "serve" / "test-artifacts"


def log_dir(name: str):
    return LOG_ROOT / f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}-{name}"


def _run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGDIR": ""}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def run_python():
    """Run code in a fresh serving-environment interpreter (the fixes patch modules process-wide)."""
    return _run_python


@pytest.fixture(scope="session")
def stack(tiny_model_dir):
    """The tiny model behind two workers on one controller, the API with a key, and the web UI."""
    with ServeStack(
        tiny_model_dir, workers=2, web_ui=True, api_keys=[API_KEY], log_dir=log_dir("shared"), device="cpu"
    ) as running:
        print(f"\nshared stack logs: {running.log_dir}")
        yield running


@pytest.fixture(scope="session")
def new_log_dir():
    """A fresh log folder under logs/serve/tests/ for a stack a test starts itself."""
    return log_dir


@pytest.fixture(scope="session")
def api_key():
    return API_KEY


@pytest.fixture(scope="session")
def client(stack):
    import openai

    return openai.OpenAI(base_url=stack.api_base, api_key=API_KEY, max_retries=0, timeout=120)
