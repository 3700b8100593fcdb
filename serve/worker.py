"""A FastChat model worker for a BiMediX model: registers the template and adapter, then runs FastChat's worker.

    python -m serve.worker --model-path models/tiny-bimedix-moe --port 21002 \\
        --controller-address http://127.0.0.1:21001 [--adapter DIR] [--model-name NAME] [FASTCHAT ARGS...]

Options this wrapper does not know go to fastchat.serve.model_worker unchanged (--num-gpus,
--load-8bit, ...). The worker binds loopback only: it has no authentication.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
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
    parser.add_argument("--device", help="cpu, cuda, mps (default: settings [worker] device)")
    parser.add_argument("--settings", help="settings file (default: serve/settings.toml)")
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


def main(argv: list[str] | None = None) -> int:
    args, rest = parse_args(argv)
    try:
        require_loopback("model worker", args.host)
        settings = load_settings(args.settings)
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
    sys.argv = fastchat_argv(args, rest, settings)
    runpy.run_module("fastchat.serve.model_worker", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
