"""FastChat's OpenAI-compatible API server, locked down: keys, request bounds, clear errors.

    python -m serve.api --port 8000 --controller-address http://127.0.0.1:21001 [--host 127.0.0.1]

API keys come from the environment (BIMEDIX_API_KEYS=key1,key2) or a file (--api-keys-file, one
key a line), never from the command line, where any user of the machine can read them. Bound to
an address other than loopback, the server refuses to start without keys.

What this adds around fastchat.serve.openai_api_server (its app and handlers run unchanged):
- when keys are set, every path needs one (FastChat leaves /api/v1/chat/completions open);
  keys are compared in constant time;
- bodies over api.max_request_bytes are refused (413); max_tokens over api.max_tokens and n
  over api.max_n are refused (400); an unset max_tokens becomes api.default_max_tokens;
- token-id prompts are refused: FastChat would decode them with tiktoken's cl100k, not this
  model's tokenizer, and answer for a different text;
- a worker that stopped answering gives 503 with a message naming it, and the controller is asked
  to drop workers that no longer answer; errors carry their HTTP status (FastChat sends 400 for all);
- one error shape on every path, OpenAI's {"error": {"message", "type", "code"}} (FastChat has
  three: its own, FastAPI's {"detail"}, and pydantic dumps with the server's file paths); no file
  path or traceback in a body; NaN and infinite numbers are refused (FastChat's range checks let
  NaN through: every comparison with NaN is false);
- GET /ready: 200 when a model worker answers, 503 until then (python -m serve ready --wait);
- no cross-origin browser access unless api.allowed_origins lists origins: a request with an
  Origin header that is not listed is refused (403);
- FastChat's settings class reads API_KEYS and CONTROLLER_ADDRESS from the environment and parses
  API_KEYS as JSON (`make serve API_KEYS=k1` exports it: the server died at import); the keys here
  come from BIMEDIX_API_KEYS only, and those two variables are removed before FastChat is imported;
- internal calls (controller, workers) carry the stack's secret (serve/trust.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import math
import os
import re
import sys
from pathlib import Path

from serve.config import ServeError, from_root, is_loopback, load_settings
from serve.trust import read_body, replaying

KEYS_ENV = "BIMEDIX_API_KEYS"
# Environment variables FastChat's AppSettings (pydantic BaseSettings, case-insensitive) reads at import.
FASTCHAT_SETTINGS_ENV = ("api_keys", "controller_address")
log = logging.getLogger("serve.api")

# FastChat's error codes (fastchat.constants.ErrorCode) -> the HTTP status an OpenAI client expects.
HTTP_STATUS = {40001: 400, 40101: 401, 40102: 401, 40103: 403, 40301: 404, 40302: 400, 40303: 400,
               42901: 429, 42902: 429, 42903: 503, 50005: 503, 50006: 503}  # fmt: skip
# OpenAI's error types by HTTP status.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
               415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
               503: "service_unavailable"}  # fmt: skip
# FastChat's error codes -> the string codes OpenAI clients see (others: the code's name, lower case).
ERROR_CODES = {40001: "invalid_request", 40301: "model_not_found", 50005: "no_worker", 50006: "worker_unavailable"}
_FILE_LINE = re.compile(r'^\s*File "[^"]*", line \d+.*$', re.MULTILINE)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+-]+){2,}\.pyc?\b")


def scrub_environment(environ: dict | None = None) -> list[str]:
    """Remove the variables FastChat's settings class would read (API_KEYS, CONTROLLER_ADDRESS); returns their names."""
    environ = os.environ if environ is None else environ
    names = [name for name in environ if name.lower() in FASTCHAT_SETTINGS_ENV]
    for name in names:
        del environ[name]
    return names


def clean_message(message: str) -> str:
    """An error message without traceback lines or source file paths (they tell a client about the server)."""
    message = _FILE_LINE.sub("", str(message))
    message = _PATH.sub(lambda m: Path(m.group(0)).name, message)
    message = re.sub(r"\n\s*\n+", "\n", message).strip()
    return message[:2000] or "error"


def error_body(status: int, message: str, code: str | int | None) -> dict:
    """OpenAI's error shape, the only one this server sends."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if isinstance(code, int):
        code = ERROR_CODES.get(code) or _code_name(code)
    return {"error": {"message": clean_message(message), "type": kind, "code": code}}


def _code_name(code: int) -> str:
    try:
        from fastchat.constants import ErrorCode

        return ErrorCode(code).name.lower()
    except (ImportError, ValueError):
        return str(code)


def non_finite_fields(request) -> list[str]:
    """The names of the request's number fields that are NaN or infinite (top level, and inside lists)."""
    bad = []
    for name, value in request:
        values = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            bad.append(name)
    return bad


def validation_message(errors) -> str:
    """A pydantic/FastAPI validation error as one line per problem, without the input or file paths."""
    lines = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            lines.append(f"the request body is not valid JSON{': ' + str(reason) if reason else ''}")
        elif error.get("type") == "missing":
            lines.append(f"{where}: a required field is missing")
        else:
            lines.append(f"{where or 'body'}: {error.get('msg', 'invalid value')}")
    return "; ".join(lines) or "invalid request"


def read_keys(keys_file: str | None) -> list[str]:
    keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    if keys_file:
        try:
            lines = Path(keys_file).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise ServeError(f"--api-keys-file {keys_file}: {err.strerror}") from None
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return keys


def chat_messages_problem(messages) -> str | None:
    """Why FastChat would render these chat messages other than templates/chat_template.jinja does, or None.

    FastChat's conversation assigns roles by position (even: user, odd: assistant) and skips empty
    messages, so two user messages in a row or an empty one would give a silently wrong prompt; the
    Jinja template refuses them. A string is FastChat's raw-prompt extension and passes as it is.
    """
    if isinstance(messages, str):
        return None
    if not messages:
        return "messages is empty"
    turns = messages[1:] if messages[0].get("role") == "system" else messages
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            return f"messages[{index}]: role {role!r} is not system, user or assistant"
        if not isinstance(content, str):
            return f"messages[{index}]: content must be a string (this model reads text only)"
        if role == "system" and index != 0:
            return f"messages[{index}]: a system message may only come first"
        if role != "system" and not content.strip():
            return f"messages[{index}]: empty {role} message"
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            offset = len(messages) - len(turns)
            return f"messages[{index + offset}]: expected a {expected} message (after an optional system message, user and assistant alternate, starting with user)"
    if not turns or turns[-1]["role"] != "user":
        return "the last message must be a user message"
    return None


def _json_response(status: int, body: dict):
    payload = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    return status, headers, payload


_DRAIN_FACTOR = 8  # bodies up to 8x the limit are read and dropped before the 413 (see _refuse_too_large)


class Guard:
    """ASGI middleware: the API key on every path, and a bound on the request body."""

    def __init__(self, app, *, api_keys: list[str], max_request_bytes: int, allowed_origins: list[str] = ()):
        self.app = app
        self.keys = [k.encode() for k in api_keys]
        self.max_bytes = max_request_bytes
        self.origins = {o.rstrip("/").encode() for o in allowed_origins}

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        if not self.keys:
            return True
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        token = token.strip()
        ok = False
        for key in self.keys:  # every key compared, in constant time
            ok |= hmac.compare_digest(token, key)
        return ok and scheme.lower() == b"bearer"

    async def _send(self, send, status: int, body: dict) -> None:
        status, headers, payload = _json_response(status, body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _refuse_too_large(self, receive, send, body: dict, *, declared: int = 0, more: bool = True) -> None:
        """413. A client that writes its whole body before reading (urllib, requests) sees a
        connection reset instead of the 413 if the server answers mid-upload and closes, so a body
        up to _DRAIN_FACTOR times the limit is read and dropped first; a larger one is cut off."""
        if declared <= self.max_bytes * _DRAIN_FACTOR:
            drained = 0
            while more and drained <= self.max_bytes * _DRAIN_FACTOR:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                more = message.get("more_body", False)
        await self._send(send, 413, body)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin is not None and origin.rstrip(b"/") not in self.origins:
            return await self._send(send, 403, error_body(
                403, f"requests from web pages are refused (Origin {origin.decode(errors='replace')}); "
                "serve/settings.yaml api.allowed_origins lists the origins allowed", "origin_not_allowed"))  # fmt: skip
        if not self._authorised(headers):
            return await self._send(send, 401, error_body(
                401, "missing or invalid API key: send the header 'Authorization: Bearer <key>'", "invalid_api_key"))  # fmt: skip
        too_large = error_body(413, f"request body larger than {self.max_bytes} bytes "
                               "(serve/settings.yaml api.max_request_bytes)", "request_too_large")  # fmt: skip
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse_too_large(receive, send, too_large, declared=int(declared))
        # Read the whole body under the bound (chunked uploads declare no length), then replay it.
        body, over, more = await read_body(receive, self.max_bytes)
        if over:
            return await self._refuse_too_large(receive, send, too_large, more=more)
        if body is None:
            return
        return await self.app(scope, replaying(body, receive), send)


def build_app(controller_address: str, api_keys: list[str], settings, secret: str):
    """FastChat's API app with the limits and error handling above; returns the ASGI app to serve."""
    scrub_environment()  # before FastChat's settings class reads API_KEYS (as JSON) at import
    import aiohttp
    import httpx
    from fastapi.exceptions import RequestValidationError
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from serve import compat, trust

    compat.apply("api")
    import fastchat.serve.openai_api_server as fc
    from fastchat.constants import ErrorCode
    from fastchat.protocol.openai_api_protocol import CompletionRequest

    limits = settings.api
    fc.app_settings.controller_address = controller_address
    fc.app_settings.api_keys = api_keys or None
    unreachable = (aiohttp.ClientError, httpx.HTTPError)
    internal = trust.headers(secret)
    fc.headers.update(internal)  # FastChat's streaming call to the worker sends these headers
    fetch_timeout = aiohttp.ClientTimeout(total=3 * 3600)

    async def fetch_remote(url, pload=None, name=None):
        """FastChat's fetch_remote contract (POST JSON; the body, or one member of it), with the stack's secret."""
        async with (
            aiohttp.ClientSession(timeout=fetch_timeout, headers=internal) as session,
            session.post(url, json=pload) as response,
        ):
            output = await response.read()
            if response.status != 200:
                return json.dumps({"text": f"{response.reason}", "error_code": ErrorCode.INTERNAL_ERROR})
        if name is None:
            return output
        result = json.loads(output)
        return result[name] if name != "" else result

    class WorkerUnavailable(Exception):
        pass

    def create_error_response(code: int, message: str) -> JSONResponse:
        status = HTTP_STATUS.get(int(code), 500 if int(code) >= 50000 else 400)
        return JSONResponse(error_body(status, message, int(code)), status_code=status)

    async def drop_dead_workers() -> None:
        """The controller re-checks each worker's status and forgets those that do not answer."""
        with contextlib.suppress(*unreachable):
            await fc.fetch_remote(controller_address + "/refresh_all_workers")

    def worker_gone(worker_addr: str, err: BaseException) -> dict:
        return {
            "text": f"the model worker at {worker_addr} stopped answering ({type(err).__name__}: {err}); "
            "the controller drops workers that do not answer; retry once a worker is serving the model",
            "error_code": ErrorCode.CONTROLLER_WORKER_TIMEOUT,
        }

    original_check_requests = fc.check_requests
    original_check_model = fc.check_model
    original_generate = fc.generate_completion
    original_stream = fc.generate_completion_stream

    def check_requests(request):
        non_finite = non_finite_fields(request)
        if non_finite:
            return create_error_response(
                ErrorCode.PARAM_OUT_OF_RANGE, f"{', '.join(non_finite)}: must be a finite number, not NaN or infinity"
            )
        if request.max_tokens is None:
            request.max_tokens = limits.default_max_tokens
        elif request.max_tokens > limits.max_tokens:
            return create_error_response(
                ErrorCode.PARAM_OUT_OF_RANGE,
                f"max_tokens {request.max_tokens} is over this server's limit of {limits.max_tokens} "
                "(serve/settings.yaml api.max_tokens)",
            )
        if request.n is not None and request.n > limits.max_n:
            return create_error_response(
                ErrorCode.PARAM_OUT_OF_RANGE,
                f"n {request.n} is over this server's limit of {limits.max_n} (serve/settings.yaml api.max_n)",
            )
        problem = chat_messages_problem(request.messages) if hasattr(request, "messages") else None
        if problem:
            return create_error_response(ErrorCode.VALIDATION_TYPE_ERROR, problem)
        if isinstance(request, CompletionRequest) and isinstance(request.prompt, list):
            token_ids = not request.prompt or not all(isinstance(p, str) for p in request.prompt)
            if token_ids:
                return create_error_response(
                    ErrorCode.VALIDATION_TYPE_ERROR,
                    "prompt must be a string or a list of strings: token-id prompts are not supported "
                    "(FastChat would decode them with tiktoken, not this model's tokenizer); with lm-eval, "
                    "set tokenized_requests=False",
                )
        return original_check_requests(request)

    async def check_model(request):
        error = await original_check_model(request)
        if error is None:
            return None
        models = await fc.fetch_remote(controller_address + "/list_models", None, "models")
        if not models:
            return create_error_response(
                ErrorCode.CONTROLLER_NO_WORKER,
                f"no model worker is serving {request.model!r} right now; start one, or retry when it is back",
            )
        return create_error_response(
            ErrorCode.INVALID_MODEL, f"model {request.model!r} is not served here; served: {', '.join(sorted(models))}"
        )

    async def get_worker_address(model_name: str) -> str:
        address = await fc.fetch_remote(controller_address + "/get_worker_address", {"model": model_name}, "address")
        if not address:
            raise WorkerUnavailable(f"no model worker is serving {model_name!r} right now")
        return address

    async def generate_completion(payload, worker_addr):
        try:
            return await original_generate(payload, worker_addr)
        except unreachable as err:
            await drop_dead_workers()
            return worker_gone(worker_addr, err)

    async def generate_completion_stream(payload, worker_addr):
        try:
            async for content in original_stream(payload, worker_addr):
                if content.get("error_code", 0) != 0:  # OpenAI clients raise on an "error" member
                    code = int(content["error_code"])
                    status = HTTP_STATUS.get(code, 500 if code >= 50000 else 400)
                    content.update(error_body(status, content["text"], code))
                yield content
        except unreachable as err:
            await drop_dead_workers()
            content = worker_gone(worker_addr, err)
            yield {**content, **error_body(503, content["text"], content["error_code"])}

    fc.fetch_remote = fetch_remote
    fc.create_error_response = create_error_response
    fc.check_requests = check_requests
    fc.check_model = check_model
    fc.get_worker_address = get_worker_address
    fc.generate_completion = generate_completion
    fc.generate_completion_stream = generate_completion_stream

    @fc.app.exception_handler(WorkerUnavailable)
    async def on_no_worker(request, exc):
        return create_error_response(ErrorCode.CONTROLLER_NO_WORKER, str(exc))

    async def on_unreachable(request, exc):
        await drop_dead_workers()
        return create_error_response(
            ErrorCode.CONTROLLER_WORKER_TIMEOUT,
            f"a FastChat part did not answer ({type(exc).__name__}: {exc}); the controller drops workers "
            "that do not answer; retry once a worker is serving the model",
        )

    for kind in unreachable:
        fc.app.add_exception_handler(kind, on_unreachable)

    async def on_invalid(request, exc):
        return JSONResponse(error_body(400, validation_message(exc.errors()), "invalid_request"), status_code=400)

    async def on_http_error(request, exc):
        if exc.status_code == 404:
            message = f"no such path: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        body = error_body(exc.status_code, message, {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code))
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def on_any_error(request, exc):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        body = error_body(500, f"internal error ({type(exc).__name__}); the API server's log has the details", None)
        return JSONResponse(body, status_code=500)

    fc.app.add_exception_handler(RequestValidationError, on_invalid)  # replaces FastChat's pydantic dump
    fc.app.add_exception_handler(StarletteHTTPException, on_http_error)  # FastAPI's {"detail": ...}
    fc.app.add_exception_handler(Exception, on_any_error)

    @fc.app.get("/ready")
    async def ready(model: str | None = None):
        """200 when a model worker answers (for `model`, when given); 503 with the reason until then."""
        try:
            status = await fetch_remote(controller_address + "/worker_get_status", None, "")
            answering = status.get("model_names", []) if isinstance(status, dict) else []
        except (*unreachable, ValueError) as err:
            body = error_body(503, f"the controller does not answer ({type(err).__name__})", "not_ready")
            return JSONResponse(body, status_code=503)
        if (model and model not in answering) or not answering:
            what = f"{model!r}" if model else "any model"
            body = error_body(503, f"no model worker answers for {what} yet", "not_ready")
            return JSONResponse(body, status_code=503)
        return {"ready": True, "models": answering}

    app = fc.app
    if limits.allowed_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=limits.allowed_origins, allow_methods=["*"], allow_headers=["*"]
        )
    return Guard(
        app, api_keys=api_keys, max_request_bytes=limits.max_request_bytes, allowed_origins=limits.allowed_origins
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--controller-address", required=True)
    parser.add_argument("--api-keys-file", help=f"one key a line (also: the {KEYS_ENV} environment variable)")
    parser.add_argument("--settings", help="settings file (default: serve/settings.yaml)")
    args = parser.parse_args(argv)
    from serve import trust

    try:
        settings = load_settings(args.settings)
        keys = read_keys(args.api_keys_file)
        if not is_loopback(args.host) and not keys:
            raise ServeError(
                f"refusing to serve the OpenAI API on {args.host} without API keys: anyone who reaches it "
                f"could use the model. Set {KEYS_ENV} or --api-keys-file, or bind 127.0.0.1."
            )
        secret = trust.read_secret("API server")
    except ServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # FastChat writes its logs (and the web UI its conversations) into LOGDIR, "." unless set.
    os.environ.setdefault("LOGDIR", str(from_root(settings.stack.log_root)))
    import uvicorn

    app = build_app(args.controller_address, keys, settings, secret)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
