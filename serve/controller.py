"""The FastChat controller, on loopback only.

    python -m serve.controller --port 21001 [--host 127.0.0.1] [--settings FILE]

The controller has no authentication and its /register_worker lets anyone who reaches it make it
fetch URLs and claim models (CVE-2024-10044), so a host other than loopback is refused.

FastChat's controller starts a heart-beat thread that is not a daemon before uvicorn binds its
port; when the bind fails (port taken) uvicorn exits with SystemExit, and the process would then
wait on that thread for ever, alive and listening nowhere. This wrapper ends the process with
uvicorn's exit code instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys

from serve.config import ServeError, from_root, load_settings, require_loopback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.controller", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--settings", help="settings file (default: serve/settings.toml)")
    args = parser.parse_args(argv)
    try:
        require_loopback("controller", args.host)
        settings = load_settings(args.settings)
    except ServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # FastChat writes its logs (and the web UI its conversations) into LOGDIR, "." unless set.
    os.environ.setdefault("LOGDIR", str(from_root(settings.stack.log_root)))
    # Read by fastchat.constants at import: how long a silent worker stays listed.
    os.environ["FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION"] = str(settings.controller.heart_beat_expiration_s)
    sys.argv = [
        "fastchat.serve.controller",
        "--host", args.host,
        "--port", str(args.port),
        "--dispatch-method", settings.controller.dispatch_method,
    ]  # fmt: skip
    code = 0
    try:
        runpy.run_module("fastchat.serve.controller", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not sys.exit: that would wait for the heart-beat thread


if __name__ == "__main__":
    sys.exit(main())
