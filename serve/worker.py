"""A FastChat model worker for a BiMediX model: registers the template and adapter, then runs FastChat's worker.

    BIMEDIX_STACK_SECRET=... python -m serve.worker --model-path models/tiny-bimedix-moe --port 21002 \\
        --controller-address http://127.0.0.1:21001 [--adapter DIR] [--model-name NAME] [FASTCHAT ARGS...]

Options this wrapper does not know go to fastchat.serve.model_worker unchanged (--num-gpus,
--load-8bit, ...). The worker binds loopback only, and answers only requests that carry the
stack's secret (serve.trust.InternalGuard: FastChat's worker has no authentication).

FastChat's module is used as a library (create_model_worker, its app); this wrapper runs uvicorn.
Two changes to how the worker registers (FastChat's registration sends its own status, which the
controller here refuses, and is sent before the worker's port listens): the worker registers once
its port answers, without a status, so that the controller asks the worker itself; it retries
while the controller does not answer (a controller being restarted), and its heart beat
registers it again whenever the controller has forgotten it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path

from serve.config import ServeError, default_model_name, from_root, load_settings, require_loopback


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m serve.worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-path", required=True, help="a model folder (merged BiMediX, or the base with --adapter)"
    )
    parser.add_argument("--adapter", help="a LoRA adapter folder to apply to --model-path")
    parser.add_argument("--model-name", help="the name clients ask for (default: the adapter's or model's folder name)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--controller-address", required=True)
    parser.add_argument("--device", help="cpu, cuda, mps (default: settings worker.device)")
    parser.add_argument("--settings", help="settings file (default: serve/settings.yaml)")
    return parser.parse_known_args(argv)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def fastchat_argv(args: argparse.Namespace, rest: list[str], settings) -> list[str]:
    worker = settings.worker
    return [
        "fastchat.serve.model_worker",
        "--host", args.host,
        "--port", str(args.port),
        "--worker-address", f"http://{args.host}:{args.port}",
        "--controller-address", args.controller_address,
        "--model-path", args.model_path,
        "--model-names", args.model_name or default_model_name(args.model_path, args.adapter),
        "--conv-template", settings.conversation.name,
        "--device", resolve_device(args.device or worker.device),
        "--limit-worker-concurrency", str(worker.limit_worker_concurrency),
        "--stream-interval", str(worker.stream_interval),
        *rest,
    ]  # fmt: skip


log = logging.getLogger("serve.worker")
REGISTER_RETRY_S = 60  # how long the first registration retries while the controller does not answer


def _register(worker, listening: threading.Event) -> bool:
    """Register without worker_status (the controller asks the worker); False when the controller did not answer."""
    import requests

    if not listening.is_set():
        return False  # FastChat registers in its constructor, before the port listens: wait for it
    url = worker.controller_addr + "/register_worker"
    body = {"worker_name": worker.worker_addr, "check_heart_beat": True, "multimodal": worker.multimodal}
    try:
        response = requests.post(url, json=body, timeout=10)
    except requests.RequestException as err:
        log.warning("registration at %s failed: %s", url, err)
        return False
    if response.status_code != 200:
        log.error("the controller refused the registration: HTTP %s %s", response.status_code, response.text[:300])
        return False
    return True


def _register_when_listening(server, worker, listening: threading.Event) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    listening.set()
    deadline = time.monotonic() + REGISTER_RETRY_S
    while not _register(worker, listening) and time.monotonic() < deadline and not server.should_exit:
        time.sleep(1)


def serve(args: argparse.Namespace, rest: list[str], settings, secret: str) -> int:
    """Load the model through FastChat, then serve its app behind the stack's guard; registers once listening."""
    import uvicorn
    from fastchat.serve import base_model_worker, model_worker

    from serve import trust

    trust.install_requests_secret(secret)  # registration and heart beats to the controller
    listening = threading.Event()
    base_model_worker.BaseModelWorker.register_to_controller = lambda self: _register(self, listening)
    sys.argv = fastchat_argv(args, rest, settings)
    fastchat_args, worker = model_worker.create_model_worker()
    app = trust.InternalGuard(model_worker.app, secret=secret, part="model worker")
    server = uvicorn.Server(uvicorn.Config(app, host=fastchat_args.host, port=fastchat_args.port, log_level="info"))
    if not fastchat_args.no_register:
        threading.Thread(target=_register_when_listening, args=(server, worker, listening), daemon=True).start()
    server.run()
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    args, rest = parse_args(argv)
    try:
        require_loopback("model worker", args.host)
        settings = load_settings(args.settings)
        from serve import trust

        secret = trust.read_secret("model worker")
        for label, path in (("--model-path", args.model_path), ("--adapter", args.adapter)):
            if path and not Path(path).is_dir():
                raise ServeError(f"{label} {path}: no such folder")
    except ServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # FastChat writes its logs (and the web UI its conversations) into LOGDIR, "." unless set.
    os.environ.setdefault("LOGDIR", str(from_root(settings.stack.log_root)))
    # FastChat reads these when its modules are imported.
    os.environ["FASTCHAT_WORKER_HEART_BEAT_INTERVAL"] = str(settings.controller.heart_beat_interval_s)

    from serve import compat, conversation

    compat.apply("worker")
    name = args.model_name or default_model_name(args.model_path, args.adapter)
    conversation.register(
        settings,
        model_names=[args.model_path, name],
        adapter_path=args.adapter,
        merge_adapter=settings.worker.merge_adapter,
    )
    return serve(args, rest, settings, secret)


if __name__ == "__main__":
    sys.exit(main())
