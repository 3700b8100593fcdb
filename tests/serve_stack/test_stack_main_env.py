"""serve/stack.py from the main environment: the contract the evaluation and data stages rely on.

The stack's parts run under .venv-serve/bin/python; this test process is the main environment's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import openai
import pytest

import serve.stack
from bimedix.paths import ROOT
from serve.config import ServeError, is_loopback, load_settings
from serve.stack import ServeStack


def test_importing_the_stack_needs_the_standard_library_only():
    """Importing needs nothing else; reading the settings file (YAML) needs PyYAML, which both environments have."""
    code = (
        "import sys; import serve.stack\n"
        "ours = ('serve', 'bimedix', '__main__')\n"
        "other = sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names | set(ours))\n"
        "print(other)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    settings = code.replace("import serve.stack", "import serve.stack; serve.stack.load_settings()")
    done = subprocess.run([sys.executable, "-c", settings], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # PyYAML (its C part is Cython), and what site.py brings (setuptools' distutils hack).
    allowed = {"yaml", "_yaml", "cython_runtime", "_distutils_hack"}
    assert {m.split(".")[0] for m in eval(done.stdout) if not m.startswith("_cython_")} <= allowed, done.stdout


def test_brings_the_stack_up_and_chats_from_the_main_environment(tiny_model_dir, tmp_path, monkeypatch):
    # Another program takes the controller's free port before the controller binds it: the stack
    # notices ("address already in use") and starts the controller again on another free port.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    real_free_port = serve.stack.free_port
    monkeypatch.setattr(serve.stack, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port(host))
    with taken, ServeStack(tiny_model_dir, log_dir=tmp_path / "logs", device="cpu") as stack:
        controller = stack.parts["controller"]
        assert controller.attempt == 2 and controller.port != taken.getsockname()[1]
        assert stack.api_base.startswith("http://127.0.0.1:") and stack.api_base.endswith("/v1")
        assert set(stack.pids) == {"controller", "worker-0", "api"}
        client = openai.OpenAI(base_url=stack.api_base, api_key="none", max_retries=0)
        reply = client.chat.completions.create(
            model=stack.model_name,
            messages=[{"role": "user", "content": "ما هو العلاج الأول لارتفاع ضغط الدم؟"}],
            max_tokens=8,
            temperature=0,
        )
        assert reply.choices[0].message.content
        processes = [part.process for part in stack.parts.values()]
    assert all(p.poll() is not None for p in processes)  # every part stopped on exit
    assert (tmp_path / "logs" / "worker-0.out").stat().st_size > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api:\n  max_tokenz: 3\n", "api has unknown key(s) ['max_tokenz']"),
        ("api:\n  max_tokens: '3'\n", "api.max_tokens = '3' is not a int"),
        ("supervise:\n  restart: 'yes'\n", "supervise.restart = 'yes' is not a bool"),
        ("apis: {}\n", "unknown section(s) ['apis']"),
        ("api: [\n", "not valid YAML"),
        ("- api\n", "expected a mapping of sections"),
        ("api:\n  default_max_tokens: 9000\n", "default_max_tokens exceeds api.max_tokens"),
    ],
)
def test_a_bad_settings_file_is_refused_naming_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(ServeError) as refused:
        load_settings(path)
    assert str(path) in str(refused.value) and message in str(refused.value)


def test_loopback_rule():
    """By address, not by spelling: 127.1 is 127.0.0.1 (it was refused as a non-loopback host)."""
    spellings = ["127.0.0.1", "127.1.2.3", "127.1", "2130706433", "0x7f.1", "::1", "[::1]", "::ffff:127.0.0.1",
                 "localhost", "LOCALHOST"]  # fmt: skip
    assert [h for h in spellings if not is_loopback(h)] == []
    assert [h for h in ["0.0.0.0", "::", "10.0.0.5", "::ffff:10.0.0.5", "128.0.0.1", "", " "] if is_loopback(h)] == []


def test_a_loopback_host_in_any_spelling_needs_no_keys(tiny_model_dir, tmp_path):
    ServeStack(tiny_model_dir, host="127.1", log_dir=tmp_path / "never")  # no ServeError: loopback
    with pytest.raises(ServeError, match="without API keys"):
        ServeStack(tiny_model_dir, host="0.0.0.0", log_dir=tmp_path / "never")


def test_refusals_before_anything_starts(tiny_model_dir, tmp_path):
    cases = [
        ({"model_path": tmp_path / "missing"}, "no such folder"),
        ({"model_path": tmp_path}, "no config.json"),
        ({"model_path": tiny_model_dir, "adapter": tiny_model_dir}, "no adapter_config.json"),
        ({"model_path": tiny_model_dir, "host": "0.0.0.0"}, "without API keys"),
        ({"model_path": tiny_model_dir, "host": "0.0.0.0", "api_keys": ["k"], "web_ui": True}, "web auth file"),
        ({"model_path": None}, "nothing to serve"),
        ({"model_path": tiny_model_dir, "workers": 0}, "at least one worker"),
        ({"model_path": tiny_model_dir, "ports": {"apii": 8000}}, r"unknown part\(s\) \['apii'\]"),
    ]
    for kwargs, message in cases:
        model_path = kwargs.pop("model_path")
        with pytest.raises(ServeError, match=message):
            ServeStack(model_path, log_dir=tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()
