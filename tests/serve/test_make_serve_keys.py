"""The README's keyed command, run through make: `make serve HOST=... API_KEYS=k1,k2 WEB_AUTH=...`.

make exports API_KEYS to the recipe's environment, and FastChat's API server reads API_KEYS
through its own settings class, as JSON: the API died at start with `SettingsError: error parsing
env var "api_keys"`. The command is taken from serve/README.md as it is written there, with two
changes for a test: the address is 127.0.0.2 (loopback, and not the default host, so the keyed
path is the one taken; a test binds nothing beyond loopback) and WEB_AUTH names a file the test
writes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from bimedix.paths import ROOT
from serve.stack import http

README = ROOT / "serve" / "README.md"


def readme_command() -> list[str]:
    lines = [line.split("#")[0].strip() for line in README.read_text(encoding="utf-8").splitlines()]
    keyed = [line for line in lines if line.startswith("make serve ") and "API_KEYS=" in line]
    assert len(keyed) == 1, f"serve/README.md should show one `make serve ... API_KEYS=...` command: {keyed}"
    return shlex.split(keyed[0])


def _default_sigint() -> None:
    os.setsid()  # make and `serve up` in a group of their own, Ctrl-C'd together as a terminal would
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_serve_with_api_keys_as_the_readme_says(tiny_model_dir, tmp_path):
    command = readme_command()
    auth = tmp_path / "web-users.txt"
    auth.write_text("doctor:not-a-real-password\n")
    args, keys = [], []
    for word in command:
        name, _, value = word.partition("=")
        if name == "HOST":
            word = "HOST=127.0.0.2"
        elif name == "WEB_AUTH":
            word = f"WEB_AUTH={auth}"
        elif name == "API_KEYS":
            keys = value.split(",")
        args.append(word)
    assert keys and "API_KEYS" in " ".join(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIMEDIX_") and k not in ("MAKEFLAGS", "MFLAGS")}
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint
    )
    lines, deadline = [], time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        output = "".join(lines)
        assert "Ctrl-C stops everything" in output, output
        api = re.search(r"OpenAI API (http://127\.0\.0\.2:\d+/v1)", output).group(1)
        web = re.search(r"web UI\s+(http://127\.0\.0\.2:\d+)/", output).group(1)
        pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
        assert http("GET", api + "/models")[0] == 401
        status, body = http("GET", api + "/models", headers={"Authorization": f"Bearer {keys[-1]}"})
        assert status == 200 and [m["id"] for m in body["data"]] == [tiny_model_dir.name]
        assert http("GET", web + "/", timeout=30)[0] == 200
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal
        rest, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "stopped: " in rest, rest
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
