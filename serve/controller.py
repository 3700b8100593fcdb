"""The FastChat controller, on loopback only, answering only the parts of its own stack.

    BIMEDIX_STACK_SECRET=... python -m serve.controller --port 21001 [--host 127.0.0.1] [--settings FILE]

FastChat's controller has no authentication and its /register_worker lets anyone who reaches it
make it fetch URLs and claim models (CVE-2024-10044). Here it binds loopback only, and every
request passes serve.trust.InternalGuard first: the stack's secret, no browser, JSON bodies only,
and registrations without a smuggled worker_status, for loopback http URLs only (the controller
then asks the worker for its status, with the secret). It also answers POST /stack_workers (the
registered worker URLs), which the stack reads to know that a worker it started is registered.

FastChat's module is used as a library (its app and Controller class); this wrapper runs uvicorn.
FastChat's Controller starts a heart-beat thread that is not a daemon; when uvicorn cannot bind its
port (taken) it exits with SystemExit, and the process would then wait on that thread for ever,
alive and listening nowhere. This wrapper ends the process with uvicorn's exit code instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from serve.config import ServeError, from_root, load_settings, require_loopback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.controller", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--settings", help="settings file (default: serve/settings.yaml)")
    args = parser.parse_args(argv)
    from serve import trust

    try:
        require_loopback("controller", args.host)
        settings = load_settings(args.settings)
        secret = trust.read_secret("controller")
    except ServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # FastChat writes its logs (and the web UI its conversations) into LOGDIR, "." unless set.
    os.environ.setdefault("LOGDIR", str(from_root(settings.stack.log_root)))
    # Read by fastchat.constants at import: how long a silent worker stays listed.
    os.environ["FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION"] = str(settings.controller.heart_beat_expiration_s)
    import fastchat.serve.controller as fc
    import uvicorn

    trust.install_requests_secret(secret)  # the controller asks workers for their status, and proxies generate
    fc.controller = fc.Controller(settings.controller.dispatch_method)

    @fc.app.post("/stack_workers")
    async def stack_workers():
        return {"workers": sorted(fc.controller.worker_info)}

    app = trust.InternalGuard(fc.app, secret=secret, part="controller", registration=True)
    code = 0
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not sys.exit: that would wait for the heart-beat thread


if __name__ == "__main__":
    sys.exit(main())
