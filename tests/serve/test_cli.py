"""`python -m serve`: up and Ctrl-C, a part that fails to start, check, and the refusals of each part."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from bimedix.paths import ROOT
from serve.stack import http
from serve.trust import SECRET_ENV, new_secret

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "LOGDIR": ""}


def serve(*args: str, timeout: float = 300, secret: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", *args]
    env = {**ENV, SECRET_ENV: new_secret()} if secret else {k: v for k, v in ENV.items() if k != SECRET_ENV}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("serve.controller", ["--host", "0.0.0.0", "--port", "1"], "CVE-2024-10044"),
        ("serve.worker", ["--host", "10.1.2.3", "--port", "1", "--model-path", "m", "--controller-address", "http://127.0.0.1:1"], "CVE-2024-10044"),
        ("serve.api", ["--host", "0.0.0.0", "--port", "1", "--controller-address", "http://127.0.0.1:1"], "without API keys"),
        ("serve.webui", ["--host", "0.0.0.0", "--port", "1", "--controller-url", "http://127.0.0.1:1"], "without --auth-file"),
    ],
    ids=["controller", "worker", "api", "webui"],
)  # fmt: skip
def test_each_part_refuses_to_listen_beyond_loopback_unprotected(module, args, message):
    refused = serve(module, *args, timeout=60)
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") <= 2  # one clear line, no traceback


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("serve.controller", ["--port", "1"]),
        ("serve.worker", ["--port", "1", "--model-path", ".", "--controller-address", "http://127.0.0.1:1"]),
        ("serve.api", ["--port", "1", "--controller-address", "http://127.0.0.1:1"]),
        ("serve.webui", ["--port", "1", "--controller-url", "http://127.0.0.1:1"]),
    ],
    ids=["controller", "worker", "api", "webui"],
)
def test_each_part_refuses_to_run_without_the_stack_secret(module, args):
    refused = serve(module, *args, timeout=60)
    assert refused.returncode == 2 and "BIMEDIX_STACK_SECRET" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") <= 2


def test_up_refuses_a_public_api_without_keys_before_starting_anything(tiny_model_dir, tmp_path):
    done = serve("serve", "up", "--model", str(tiny_model_dir), "--host", "0.0.0.0", "--log-dir", str(tmp_path))
    assert done.returncode == 1 and "without API keys" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing was started


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_up(*args: str) -> tuple[subprocess.Popen, str]:
    """`python -m serve up ...` in the background, read until it says it is ready."""
    command = [sys.executable, "-m", "serve", "up", *args]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A shell's background job (`cmd &` without job control, nohup) starts with SIGINT ignored, and
        # Python then installs no KeyboardInterrupt handler: give `up` the Ctrl-C a terminal would.
        preexec_fn=_default_sigint,
    )
    lines, deadline = [], time.monotonic() + 240
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    return process, "".join(lines)


def test_up_runs_until_ctrl_c_then_stops_every_part(tiny_model_dir, new_log_dir):
    process, output = start_up("--model", str(tiny_model_dir), "--no-web", "--device", "cpu",
                               "--log-dir", str(new_log_dir("cli-up")))  # fmt: skip
    try:
        assert "Ctrl-C stops everything" in output, output
        pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
        assert len(pids) == 3 and all(not gone(p) for p in pids)  # controller, worker, api
        assert re.search(r"OpenAI API http://127\.0\.0\.1:\d+/v1", output)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "stopped: controller pid" in rest
    assert all(gone(p) for p in pids)


def test_up_restarts_a_killed_worker_and_keeps_running(tiny_model_dir, new_log_dir):
    """`kill -9` of the worker: `up` restarts it, says so, and the API answers again; `up` keeps running."""
    logs = new_log_dir("cli-restart")
    process, output = start_up("--model", str(tiny_model_dir), "--no-web", "--device", "cpu", "--log-dir", str(logs),
                               "--worker-args", "--stream-interval 4")  # fmt: skip
    try:
        assert "Ctrl-C stops everything" in output, output
        pids = dict(re.findall(r"^(controller|worker-0|api)\s+pid (\d+)", output, re.MULTILINE))
        api = re.search(r"OpenAI API (http://\S+/v1)", output).group(1)
        os.kill(int(pids["worker-0"]), signal.SIGKILL)  # a crash, not a stop
        lines = read_until(process, "the worker-0 is back", timeout=240)
        assert f"the worker-0 (pid {pids['worker-0']}) exited with code -9; restarting it in 1.0 s" in lines, lines
        assert process.poll() is None  # still running
        status, body = http("POST", api + "/chat/completions",
                            {"model": tiny_model_dir.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})  # fmt: skip
        assert status == 200, body
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert all(gone(int(pid)) for pid in [pids["controller"], pids["api"]])
    assert "--stream-interval 4" in (logs / "worker-0.out").read_text().splitlines()[0]  # --worker-args got there


def read_until(process: subprocess.Popen, text: str, timeout: float) -> str:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            break
    return "".join(lines)


def test_up_gives_up_on_a_worker_that_keeps_crashing(tiny_model_dir, tmp_path, new_log_dir):
    """A worker that dies again at every start (here: its model file broke) ends `up` with one clear error."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    fast = tmp_path / "fast.yaml"
    settings = (ROOT / "serve" / "settings.yaml").read_text(encoding="utf-8")
    fast.write_text(
        settings.replace("backoff_s: 1.0", "backoff_s: 0.2").replace("max_fast_crashes: 5", "max_fast_crashes: 2")
    )
    logs = new_log_dir("cli-give-up")
    process, output = start_up("--model", str(model), "--no-web", "--device", "cpu", "--log-dir", str(logs),
                               "--settings", str(fast))  # fmt: skip
    try:
        assert "Ctrl-C stops everything" in output, output
        pids = dict(re.findall(r"^(controller|worker-0|api)\s+pid (\d+)", output, re.MULTILINE))
        (model / "model.safetensors").write_bytes(b"not a safetensors file")
        os.kill(int(pids["worker-0"]), signal.SIGKILL)
        rest, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, rest
    assert "2 crashes in a row" in rest and "giving up" in rest and "stopping the stack" in rest, rest
    assert "Error" in rest  # the end of the worker's log comes along
    assert all(gone(int(pid)) for pid in pids.values())


def test_up_with_no_restart_stops_everything_when_a_part_dies(tiny_model_dir, new_log_dir):
    process, output = start_up("--model", str(tiny_model_dir), "--no-web", "--device", "cpu", "--no-restart",
                               "--log-dir", str(new_log_dir("cli-no-restart")))  # fmt: skip
    try:
        assert "Ctrl-C stops everything" in output, output
        pids = dict(re.findall(r"^(controller|worker-0|api)\s+pid (\d+)", output, re.MULTILINE))
        os.kill(int(pids["worker-0"]), signal.SIGKILL)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert f"the worker-0 (pid {pids['worker-0']}) exited with code -9; stopping the stack" in rest
    assert all(gone(int(pid)) for pid in pids.values())


def test_up_exits_non_zero_naming_the_part_that_failed(tiny_model_dir, tmp_path, new_log_dir):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    logs = new_log_dir("cli-broken")
    done = serve("serve", "up", "--model", str(broken), "--no-web", "--device", "cpu", "--log-dir", str(logs))
    assert done.returncode == 1
    assert "the worker-0 exited with code" in done.stderr and str(logs / "worker-0.out") in done.stderr
    assert "Error" in done.stderr  # the end of the worker's log comes along
    stopped = dict(re.findall(r"(controller|worker-0|api) pid (\d+)", done.stdout.split("stopped")[-1]))
    assert set(stopped) == {"controller", "worker-0", "api"}, done.stdout  # what had started ...
    assert all(gone(int(pid)) for pid in stopped.values())  # ... is stopped


def test_check_compares_the_template_with_the_models_tokenizer(tiny_model_dir):
    done = serve("serve", "check", "--model", str(tiny_model_dir), timeout=180)
    assert done.returncode == 0, done.stderr
    assert "ok  template: the API and web UI prompts equal the model's chat template, token for token" in done.stdout


def test_the_controller_exits_when_its_port_is_taken():
    """FastChat's controller would hang for ever (a non-daemon thread); serve.controller exits with uvicorn's code."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = serve("serve.controller", "--port", str(taken.getsockname()[1]), timeout=60, secret=True)
    assert done.returncode == 3  # uvicorn's "startup failed"
    assert "address already in use" in done.stdout + done.stderr
