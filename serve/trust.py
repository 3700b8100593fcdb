"""Trust inside one stack: the controller and the workers answer only the parts the stack started.

FastChat's controller and workers have no authentication (CVE-2024-10044): anyone who reaches the
controller can register a "worker" at any URL and then receives the chats routed to it, prompts
included, and the workers' generate endpoints answer anyone. Binding loopback is not enough: every
user and every program on the machine reaches loopback, and a web page open in a browser on the
machine can post to it.

So each stack makes a secret (ServeStack, `python -m serve up`) and hands it to the parts it starts
in the environment (BIMEDIX_STACK_SECRET, never on a command line, where `ps` shows it). Every
internal request carries it in the X-BiMediX-Stack-Secret header, and the controller and the
workers refuse, before FastChat sees the request:
- a request without the secret (401), or from a browser (an Origin or Sec-Fetch-* header, 403);
- a request body that is not JSON (415): a browser page can post text/plain without a preflight;
- a registration that carries its own `worker_status` (400): FastChat lists such a worker without
  ever asking it; here the controller always asks the worker, with the secret;
- a registration for a URL that is not http on a loopback address (400): the workers of a stack
  bind loopback, so no registration can point the controller at another host.

Standard library only (serve/stack.py imports it from the main environment); the parts patch
`requests` with install_requests_secret().
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import urllib.parse

from serve.config import ServeError, is_loopback

SECRET_ENV = "BIMEDIX_STACK_SECRET"
HEADER = "X-BiMediX-Stack-Secret"
_HEADER_KEY = HEADER.lower().encode()
MIN_SECRET_CHARS = 32
# Internal bodies are prompts and generation parameters; the API bounds what clients send.
MAX_INTERNAL_BODY = 64 * 1024 * 1024
_BROWSER_HEADERS = (b"origin", b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def read_secret(part: str, environ: dict | None = None) -> str:
    """The stack's secret from the environment; a part started without one refuses to run."""
    secret = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    if len(secret) < MIN_SECRET_CHARS:
        raise ServeError(
            f"the {part} needs the stack's secret in {SECRET_ENV} (at least {MIN_SECRET_CHARS} characters): "
            "the controller and the workers answer only parts started with it (CVE-2024-10044). "
            "`python -m serve up` sets it; by hand, export one first (serve/README.md)."
        )
    return secret


def headers(secret: str) -> dict[str, str]:
    return {HEADER: secret}


def loopback_http_url(url: str) -> bool:
    """True for an http:// URL whose host is a loopback address (where this stack's parts listen)."""
    try:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parsed.scheme == "http" and bool(host) and is_loopback(host)


def error_body(status: int, message: str, code: str) -> bytes:
    kind = {401: "authentication_error", 403: "permission_error"}.get(status, "invalid_request_error")
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class InternalGuard:
    """ASGI middleware in front of FastChat's controller or worker app: the checks in this module's docstring."""

    def __init__(self, app, *, secret: str, part: str, registration: bool = False):
        self.app = app
        self.secret = secret.encode()
        self.part = part
        self.registration = registration  # the controller: check /register_worker bodies

    async def _refuse(self, send, status: int, message: str, code: str) -> None:
        payload = error_body(status, f"the {self.part}: {message}", code)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _registration_problem(self, body: bytes) -> str | None:
        try:
            data = json.loads(body)
        except ValueError:
            return "the registration is not valid JSON"
        if not isinstance(data, dict):
            return "the registration must be a JSON object"
        if data.get("worker_status") is not None:
            return (
                "a registration may not carry worker_status: the controller asks the worker itself "
                "(FastChat would list the worker without contacting it)"
            )
        name = data.get("worker_name")
        if not isinstance(name, str) or not loopback_http_url(name):
            return f"worker_name {name!r} is not an http URL on a loopback address (workers bind loopback)"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_headers = dict(scope["headers"])
        browser = [h.decode() for h in _BROWSER_HEADERS if h in request_headers]
        if browser:
            return await self._refuse(
                send, 403, f"browser requests are refused ({', '.join(browser)} header): it is internal to the stack",
                "browser_request",
            )  # fmt: skip
        if not hmac.compare_digest(request_headers.get(_HEADER_KEY, b""), self.secret):
            return await self._refuse(
                send, 401, f"missing or wrong {HEADER} header: it answers only the parts of its own stack",
                "stack_secret",
            )  # fmt: skip
        body, over, _ = await read_body(receive, MAX_INTERNAL_BODY)
        if over:
            return await self._refuse(send, 413, "request body too large", "request_too_large")
        if body is None:
            return
        content_type = request_headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and content_type != b"application/json":
            return await self._refuse(
                send, 415, f"the body must be application/json, not {content_type.decode() or 'untyped'}",
                "unsupported_media_type",
            )  # fmt: skip
        if self.registration and scope["path"].rstrip("/") == "/register_worker":
            problem = self._registration_problem(body)
            if problem:
                return await self._refuse(send, 400, problem, "bad_registration")
        return await self.app(scope, replaying(body, receive), send)


async def read_body(receive, limit: int) -> tuple[bytes | None, bool, bool]:
    """Read an ASGI request body, stopping as soon as it exceeds limit bytes.

    Returns (body, over, more): body is None when the client went away or the body is over the
    limit; more says whether the client still had more to send when reading stopped.
    """
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None, False, False
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit:
            return None, True, more
    return b"".join(chunks), False, False


def replaying(body: bytes, receive):
    """An ASGI receive that gives the app the body a guard already read, then the real channel."""
    replayed = False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def install_requests_secret(secret: str) -> None:
    """Every `requests` call of this process to a loopback http URL carries the stack's secret.

    FastChat's controller (worker status, generate proxy), its workers (registration, heart beat)
    and its web UI (controller, workers) talk to one another with `requests`. Other hosts never see
    the secret.
    """
    import requests.sessions

    original = requests.sessions.Session.request
    if getattr(original, "_bimedix_secret", False):
        return

    def request(self, method, url, *args, **kwargs):
        if loopback_http_url(str(url)):
            kwargs["headers"] = {**(kwargs.get("headers") or {}), HEADER: secret}
        return original(self, method, url, *args, **kwargs)

    request._bimedix_secret = True
    requests.sessions.Session.request = request
