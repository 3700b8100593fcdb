"""python -m serve: bring the FastChat stack up, check a setup, write the vLLM endpoint file.

python -m serve up --model models/tiny-bimedix-moe            # OpenAI API + web UI on 127.0.0.1
python -m serve up --model BASE --adapter LORA --workers 2     # base + LoRA adapter, two workers
python -m serve up --api-endpoint-file FILE                    # web UI only, in front of vLLM
python -m serve check --model models/tiny-bimedix-moe          # settings, paths, template vs tokenizer
python -m serve ready --api-base http://127.0.0.1:8000/v1 --wait 120   # exit 0 once a model answers
python -m serve write-api-endpoints --model-name bimedix --api-base http://127.0.0.1:8000/v1 --out FILE
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import time
import urllib.parse
from dataclasses import dataclass, fields
from pathlib import Path

from serve.config import ServeError, from_root, load_settings


@dataclass
class StackOptions:
    model: str | None = None
    adapter: str | None = None
    model_name: str | None = None
    workers: int = 1
    web: bool = True
    host: str | None = None
    controller_port: int = 0
    worker_port: int = 0
    api_port: int = 0
    web_port: int = 0
    api_keys_file: str | None = None
    api_endpoint_file: str | None = None
    web_auth_file: str | None = None
    device: str | None = None
    worker_args: str | None = None
    log_dir: str | None = None
    settings: str | None = None
    startup_timeout_s: float | None = None
    restart: bool = True


@dataclass
class ReadyOptions:
    api_base: str
    model: str | None = None
    wait: float = 0.0


@dataclass
class EndpointOptions:
    model_name: str
    api_base: str
    out: str
    api_key_env: str | None = None
    display_name: str | None = None


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder: a merged BiMediX model, or the base with --adapter")
    parser.add_argument("--adapter", help="LoRA adapter folder applied to --model (merged at load)")
    parser.add_argument("--model-name", help="the name clients ask for (default: the adapter's or model's folder name)")
    parser.add_argument("--workers", type=int, default=1, help="model workers on the one controller (default 1)")
    parser.add_argument("--no-web", dest="web", action="store_false", help="no web UI (API only)")
    parser.add_argument("--host", help="address of the API and web UI (default: settings stack.host, 127.0.0.1)")
    for part in ("controller", "worker", "api", "web"):
        parser.add_argument(f"--{part}-port", type=int, default=0, help=f"{part} port (default: a free one)")
    parser.add_argument("--api-keys-file", help="API keys, one a line (or the BIMEDIX_API_KEYS environment variable)")
    parser.add_argument("--api-endpoint-file", help="also list these OpenAI-compatible endpoints in the web UI")
    parser.add_argument("--web-auth-file", help="user:password pairs for the web UI (needed off loopback)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: settings worker.device, auto)")
    parser.add_argument(
        "--worker-args", help='more options for FastChat\'s model worker, e.g. "--num-gpus 2 --dtype bfloat16"'
    )
    parser.add_argument("--log-dir", help="where the parts log (default: logs/serve/<timestamp>-<pid>/)")
    parser.add_argument("--settings", help="settings file (default: serve/settings.yaml)")
    parser.add_argument("--startup-timeout-s", type=float, help="seconds each part may take to answer")
    parser.add_argument(
        "--no-restart", dest="restart", action="store_false",
        help="stop everything when a part dies, instead of restarting it (settings supervise)",
    )  # fmt: skip


def _options(cls, namespace: argparse.Namespace):
    return cls(**{f.name: getattr(namespace, f.name) for f in fields(cls) if hasattr(namespace, f.name)})


def build_stack(opts: StackOptions):
    from serve.api import read_keys
    from serve.stack import ServeStack

    if opts.model is None and opts.api_endpoint_file is None:
        raise ServeError("give --model (a model folder) or --api-endpoint-file (web UI in front of vLLM)")
    ports = {"controller": opts.controller_port, "worker": opts.worker_port, "api": opts.api_port}
    ports["web"] = opts.web_port
    return ServeStack(
        opts.model,
        adapter=opts.adapter,
        model_name=opts.model_name,
        workers=opts.workers,
        web_ui=opts.web,
        api_keys=read_keys(opts.api_keys_file),
        host=opts.host,
        ports=ports,
        log_dir=opts.log_dir,
        settings=opts.settings,
        api_endpoint_file=opts.api_endpoint_file,
        device=opts.device,
        web_auth_file=opts.web_auth_file,
        startup_timeout_s=opts.startup_timeout_s,
        worker_args=shlex.split(opts.worker_args or ""),
        supervise=None if opts.restart else False,
    )


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def up(opts: StackOptions) -> int:
    """Foreground: start everything, print where it is, keep it up; stop everything on Ctrl-C.

    A part that dies is restarted by the stack's supervisor (one line each on stderr); `up` exits 1
    when the supervisor gives up (repeated fast crashes), or, with --no-restart, when a part dies.
    """
    stack = build_stack(opts)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("serve.stack").addHandler(handler)
    logging.getLogger("serve.stack").propagate = False
    print(f"starting the stack (logs: {stack.log_dir}) ...", flush=True)
    try:
        stack.start()
        print(stack.describe(), flush=True)
        restarts = "a part that dies is restarted" if stack.supervise else "a part that dies stops everything"
        print(f"Research only, not for clinical use. {restarts}; Ctrl-C stops everything.", flush=True)
        while True:
            if stack.gave_up is not None:
                print(f"error: {stack.gave_up}; stopping the stack.", file=sys.stderr, flush=True)
                return 1
            failed = [] if stack.supervise else stack.failed()
            if failed:
                part = failed[0]
                print(
                    f"error: the {part.role} (pid {part.pid}) exited with code {part.process.returncode}; "
                    f"stopping the stack. Its log, {part.log}, ends with:\n{part.log_tail()}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        stack.stop()
        stopped = ", ".join(f"{role} pid {pid}" for role, pid in stack.pids.items())
        print(f"stopped{': ' + stopped if stopped else ''}.", flush=True)


def ready(opts: ReadyOptions) -> int:
    """Exit 0 when the API's GET /ready says a model answers; poll up to --wait seconds. Key: BIMEDIX_API_KEYS."""
    from serve.stack import API_KEYS_ENV, http

    parsed = urllib.parse.urlsplit(opts.api_base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ServeError(f"--api-base {opts.api_base!r}: expected a URL such as http://127.0.0.1:8000/v1")
    root = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/').removesuffix('/v1')}"
    url = root + "/ready" + (f"?model={urllib.parse.quote(opts.model)}" if opts.model else "")
    key = os.environ.get(API_KEYS_ENV, "").split(",")[0].strip()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    start = time.monotonic()
    while True:
        try:
            status, body = http("GET", url, headers=headers, timeout=10)
            reason = body["error"]["message"] if isinstance(body, dict) and "error" in body else f"HTTP {status}"
        except OSError as err:
            status, body, reason = 0, None, f"the API does not answer ({err})"
        if status == 200:
            print(f"ready: {', '.join(body.get('models', []))} ({time.monotonic() - start:.1f} s)")
            return 0
        if time.monotonic() - start >= opts.wait:
            print(f"not ready: {reason}", file=sys.stderr)
            return 1
        time.sleep(0.5)


def check(opts: StackOptions) -> int:
    """What `up` would refuse, found without starting anything; then the template against the tokenizer."""
    settings = load_settings(opts.settings)
    print(f"ok  settings {settings.path}")
    stack = build_stack(opts)
    print(f"ok  setup: model {stack.model_path or '-'}, adapter {stack.adapter or '-'}, name {stack.model_name}")
    from serve.stack import serve_python

    print(f"ok  serving environment {serve_python()}")
    if stack.model_path is None:
        return 0
    os.environ.setdefault("LOGDIR", "")  # FastChat writes log files into LOGDIR ("." by default)
    try:
        import fastchat  # noqa: F401
        from transformers import AutoTokenizer

        from serve import conversation
    except ImportError as err:
        print(f"skip template check: {err.name} is not importable here; run check with .venv-serve/bin/python")
        return 0
    conversation.register(settings, model_names=[str(stack.model_path), stack.model_name])
    tokenizer = AutoTokenizer.from_pretrained(stack.model_path)
    if not tokenizer.chat_template:
        print(f"note: {stack.model_path} has no chat template; comparing with templates/chat_template.jinja")
        from bimedix.chat import chat_template

        tokenizer.chat_template = chat_template()
    problems = conversation.template_mismatches(tokenizer, settings, model_name=stack.model_name)
    for name, path, problem in problems:
        print(f"MISMATCH {path}: {name}: {problem}")
    if problems:
        print("error: FastChat's prompts differ from the model's chat template (see above)", file=sys.stderr)
        return 1
    samples = len(conversation.load_samples())
    print(
        f"ok  template: the API and web UI prompts equal the model's chat template, token for token ({samples} conversations)"
    )
    return 0


def write_api_endpoints(opts: EndpointOptions) -> int:
    from serve.endpoints import write_endpoint_file

    key = None
    if opts.api_key_env:
        key = os.environ.get(opts.api_key_env)
        if not key:
            raise ServeError(f"--api-key-env {opts.api_key_env}: the variable is not set or empty")
    out = write_endpoint_file(
        from_root(opts.out) if not Path(opts.out).is_absolute() else opts.out,
        opts.model_name,
        opts.api_base,
        api_key=key,
        display_name=opts.display_name,
    )
    print(f"wrote {out} (mode 600): {opts.display_name or opts.model_name} -> {opts.api_base}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the stack in the foreground; Ctrl-C stops it")
    _stack_arguments(up_parser)
    check_parser = commands.add_parser("check", help="check settings, paths, hosts and the template; start nothing")
    _stack_arguments(check_parser)
    ready_parser = commands.add_parser("ready", help="exit 0 when the API says a model answers (GET /ready)")
    ready_parser.add_argument("--api-base", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000/v1")
    ready_parser.add_argument("--model", help="the model that must answer (default: any)")
    ready_parser.add_argument("--wait", type=float, default=0.0, help="seconds to keep asking (default: ask once)")
    endpoints = commands.add_parser(
        "write-api-endpoints", help="write the web UI's file of OpenAI-compatible endpoints"
    )
    endpoints.add_argument(
        "--model-name", required=True, help="the model name the server serves (vLLM --served-model-name)"
    )
    endpoints.add_argument("--api-base", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000/v1")
    endpoints.add_argument("--out", required=True, help="the JSON file to write (entries already there are kept)")
    endpoints.add_argument("--api-key-env", help="environment variable holding the server's API key")
    endpoints.add_argument("--display-name", help="the name the web UI shows (default: --model-name)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(_options(StackOptions, args))
        if args.command == "check":
            return check(_options(StackOptions, args))
        if args.command == "ready":
            return ready(_options(ReadyOptions, args))
        return write_api_endpoints(_options(EndpointOptions, args))
    except ServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
