"""The vLLM path: the endpoint file `python -m serve write-api-endpoints` writes, and the web UI using it.

vLLM is not installable here (GPU hosts); the shared stack's own OpenAI API server stands in for
it: a real OpenAI-compatible server on loopback, with an API key.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from bimedix.chat import system_message
from bimedix.paths import ROOT
from serve.stack import ServeStack, http


def write_endpoints(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serve", "write-api-endpoints", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def endpoint_file(stack, api_key, tmp_path_factory):
    out = tmp_path_factory.mktemp("vllm") / "api_endpoints.json"
    args = ["--model-name", stack.model_name, "--api-base", stack.api_base, "--out", str(out)]
    done = write_endpoints(*args, "--api-key-env", "VLLM_TEST_KEY", "--display-name", "bimedix-vllm",
                           env={"VLLM_TEST_KEY": api_key})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_writes_fastchats_endpoint_format_readable_by_its_owner_only(endpoint_file, stack, api_key):
    entries = json.loads(endpoint_file.read_text())
    assert entries == {
        "bimedix-vllm": {
            "model_name": stack.model_name,
            "api_type": "openai",
            "api_base": stack.api_base,
            "api_key": api_key,
            "anony_only": False,
        }
    }
    assert stat.S_IMODE(endpoint_file.stat().st_mode) == 0o600  # it may hold a key


def test_adds_to_an_existing_file_and_refuses_bad_input(endpoint_file, tmp_path):
    copy = tmp_path / "endpoints.json"
    copy.write_text(endpoint_file.read_text())
    done = write_endpoints("--model-name", "other", "--api-base", "http://127.0.0.1:9/v1", "--out", str(copy))
    assert done.returncode == 0, done.stderr
    entries = json.loads(copy.read_text())
    assert set(entries) == {"bimedix-vllm", "other"} and entries["other"]["api_key"] == "none"
    bad = write_endpoints("--model-name", "x", "--api-base", "127.0.0.1:8000", "--out", str(copy))
    assert bad.returncode == 1 and "expected an http(s) URL" in bad.stderr
    unset = write_endpoints("--model-name", "x", "--api-base", "http://h/v1", "--out", str(copy), "--api-key-env", "NO_SUCH_VAR_X")  # fmt: skip
    assert unset.returncode == 1 and "NO_SUCH_VAR_X" in unset.stderr


def test_web_ui_fronts_the_endpoint_and_fastchat_chats_through_it(endpoint_file, new_log_dir):
    from fastchat.model.model_adapter import get_conversation_template
    from fastchat.serve.api_provider import get_api_provider_stream_iter

    from serve import conversation

    with ServeStack(None, api_endpoint_file=endpoint_file, log_dir=new_log_dir("vllm-webui")) as web_only:
        assert set(web_only.parts) == {"web"}  # no controller, no worker: the web UI alone
        status, config = http("GET", web_only.web_url + "/config")
        choices = [c["props"].get("choices") for c in config["components"] if c.get("type") == "dropdown"]
        assert status == 200 and choices == [[["bimedix-vllm", "bimedix-vllm"]]]

    # What the web UI does with the entry on each message (gradio_web_server.bot_response).
    conversation.register(model_names=["bimedix-vllm"])
    conv = get_conversation_template("bimedix-vllm")
    conv.append_message(conv.roles[0], "ما هي أعراض فقر الدم؟")
    conv.append_message(conv.roles[1], None)
    assert conv.to_openai_api_messages()[0] == {"role": "system", "content": system_message()}
    entry = json.loads(endpoint_file.read_text())["bimedix-vllm"]
    stdout, stderr = sys.stdout, sys.stderr  # FastChat's logger swaps them when api_provider is imported
    try:
        chunks = list(get_api_provider_stream_iter(conv, "bimedix-vllm", entry, 0.0, 1.0, 8))
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    assert chunks and all(c["error_code"] == 0 for c in chunks) and chunks[-1]["text"].strip()
