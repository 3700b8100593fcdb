"""CVE-2024-10044 from loopback: the controller and the workers answer only the parts of their own stack.

FastChat's controller registered any "worker" that anyone on the machine (or a web page open in a
browser on it, with a text/plain body) told it about, listed a smuggled worker_status without
contacting the worker, and routed chats that had passed the API key check to it, prompts
included. The workers' and the controller's generate endpoints answered anyone. These tests play
the rogue, on loopback, against the shared stack (two workers, API keys, web UI).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serve.stack import http

ROGUE_MODEL = "bimedix-rogue"


class Rogue:
    """A fake worker on 127.0.0.1 that claims a model, answers "ROGUE" and records every request it gets."""

    def __init__(self, model_names: list[str]):
        self.requests: list[tuple[str, bytes]] = []
        rogue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rogue.requests.append((self.path, body))
                if self.path == "/worker_get_status":
                    reply = {"model_names": model_names, "speed": 1, "queue_length": 0}
                elif self.path == "/model_details":
                    reply = {"context_length": 4096}
                elif self.path == "/count_token":
                    reply = {"count": 8, "error_code": 0}
                else:
                    reply = {"text": "ROGUE", "error_code": 0, "usage": {}, "finish_reason": "stop"}
                payload = json.dumps(reply).encode() + (b"\0" if "stream" in self.path else b"")
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def post(url: str, data: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture
def internal(stack):
    """The stack's secret header (none on a stack that has none, so the tests also run against FastChat's code)."""
    return getattr(stack, "internal_headers", {})


@pytest.fixture
def rogue(stack, internal):
    rogue = Rogue([stack.model_name, ROGUE_MODEL])
    yield rogue
    rogue.close()
    http("POST", stack.controller_url + "/refresh_all_workers", headers=internal, timeout=30)  # forget it, if listed


def listed_models(stack, internal) -> list[str]:
    return http("POST", stack.controller_url + "/list_models", headers=internal)[1]["models"]


def test_a_web_page_cannot_register_a_worker(stack, rogue, internal):
    """What a page open in a browser on the machine can send without a preflight: text/plain, an Origin."""
    body = json.dumps({"worker_name": rogue.url, "check_heart_beat": False,
                       "worker_status": {"model_names": [ROGUE_MODEL], "speed": 1, "queue_length": 0}}).encode()  # fmt: skip
    status = post(stack.controller_url + "/register_worker", body,
                  {"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert status == 403
    assert ROGUE_MODEL not in listed_models(stack, internal)


def test_a_registration_without_the_stack_secret_is_refused(stack, rogue, client, internal):
    status, body = http("POST", stack.controller_url + "/register_worker",
                        {"worker_name": rogue.url, "check_heart_beat": False})  # fmt: skip
    assert status == 401 and body["error"]["code"] == "stack_secret"
    # Chats that passed the API key check go to the stack's own workers only.
    for _ in range(6):
        reply = client.chat.completions.create(
            model=stack.model_name, messages=[{"role": "user", "content": "My patient's HbA1c is 9%"}], max_tokens=2
        )
        assert reply.choices[0].message.content != "ROGUE"
    assert rogue.requests == []  # not even asked for its status


def test_worker_status_cannot_be_smuggled_even_with_the_secret(stack, rogue, internal):
    smuggled = {"model_names": [ROGUE_MODEL], "speed": 1, "queue_length": 0}
    status, body = http("POST", stack.controller_url + "/register_worker",
                        {"worker_name": rogue.url, "check_heart_beat": False, "worker_status": smuggled},
                        headers=internal)  # fmt: skip
    assert status == 400 and "worker_status" in body["error"]["message"]
    assert ROGUE_MODEL not in listed_models(stack, internal)


@pytest.mark.parametrize("url", ["http://0.0.0.0:9", "https://127.0.0.1:9", "file:///etc/passwd", "http://127.0.0.1:x"])
def test_a_worker_url_off_loopback_http_is_refused_before_any_request(stack, internal, url):
    status, body = http("POST", stack.controller_url + "/register_worker",
                        {"worker_name": url, "check_heart_beat": False}, headers=internal)  # fmt: skip
    assert status == 400 and "loopback" in body["error"]["message"]


def test_generate_endpoints_need_the_secret(stack):
    request = {"model": stack.model_name, "prompt": "[INST] fever? [/INST]", "max_new_tokens": 2, "temperature": 0}
    worker = stack.workers[0].url
    for url in (worker + "/worker_generate", worker + "/worker_generate_stream",
                stack.controller_url + "/worker_generate_stream", worker + "/worker_get_status"):  # fmt: skip
        status, body = http("POST", url, request)
        assert status == 401 and body["error"]["code"] == "stack_secret", url


def test_the_stack_itself_passes(stack, internal):
    status, body = http("POST", stack.workers[0].url + "/worker_get_status", headers=internal)
    assert status == 200 and body["model_names"] == [stack.model_name]
    status, body = http("POST", stack.controller_url + "/stack_workers", headers=internal)
    assert status == 200 and sorted(body["workers"]) == sorted(w.url for w in stack.workers)
