"""One error shape on every path, nothing about the server in it, and numbers that are numbers.

FastChat answered with three shapes ({"object": "error", ...}, FastAPI's {"detail": ...}, this
project's {"error": ...}), put pydantic dumps with the server's file paths and line numbers in
the message of a malformed request, and answered `temperature: "NaN"` with 200.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from serve.stack import http

USER = [{"role": "user", "content": "What is the first-line drug for type 2 diabetes?"}]


def send(stack, method: str, path: str, data: bytes | None, key: str | None, content_type="application/json"):
    request = urllib.request.Request(stack.parts["api"].url + path, data=data, method=method)
    request.add_header("Content-Type", content_type)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def chat(stack, **fields) -> bytes:
    return json.dumps({"model": stack.model_name, "messages": USER, "max_tokens": 2, **fields}).encode()


BAD = {
    "malformed JSON": ("POST", "/v1/chat/completions", lambda s: b'{"model": "x", "messages": [', 400),
    "not an object": ("POST", "/v1/chat/completions", lambda s: b"[1, 2]", 400),
    "no model": ("POST", "/v1/chat/completions", lambda s: json.dumps({"messages": USER}).encode(), 400),
    "no messages": ("POST", "/v1/chat/completions", lambda s: json.dumps({"model": s.model_name}).encode(), 400),
    "temperature a word": ("POST", "/v1/chat/completions", lambda s: chat(s, temperature="warm"), 400),
    "temperature NaN string": ("POST", "/v1/chat/completions", lambda s: chat(s, temperature="NaN"), 400),
    "temperature NaN literal": ("POST", "/v1/chat/completions", lambda s: chat(s).replace(b'"max_tokens"', b'"temperature": NaN, "max_tokens"'), 400),
    "top_p infinity": ("POST", "/v1/chat/completions", lambda s: chat(s, top_p="Infinity"), 400),
    "presence_penalty -inf": ("POST", "/v1/completions", lambda s: json.dumps({"model": s.model_name, "prompt": "a", "max_tokens": 1, "presence_penalty": "-inf"}).encode(), 400),
    "unknown model": ("POST", "/v1/chat/completions", lambda s: chat(s, model="gpt-4"), 404),
    "two user messages": ("POST", "/v1/chat/completions", lambda s: chat(s, messages=USER * 2), 400),
    "max_tokens too large": ("POST", "/v1/chat/completions", lambda s: chat(s, max_tokens=10**6), 400),
    "token-id prompt": ("POST", "/v1/completions", lambda s: json.dumps({"model": s.model_name, "prompt": [1, 2]}).encode(), 400),
    "unknown path": ("GET", "/v1/nothing-here", lambda s: None, 404),
    "wrong method": ("GET", "/v1/chat/completions", lambda s: None, 405),
    "embeddings of a model not served": ("POST", "/v1/embeddings", lambda s: json.dumps({"model": "x", "input": "a"}).encode(), 404),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_every_error_has_openais_shape_and_no_server_internals(stack, api_key, case):
    method, path, body, expected = BAD[case]
    status, text = send(stack, method, path, body(stack), api_key)
    assert status == expected, text
    data = json.loads(text)
    assert set(data) == {"error"}, text
    assert set(data["error"]) == {"message", "type", "code"}, text
    message = data["error"]["message"]
    assert isinstance(message, str) and message and isinstance(data["error"]["type"], str)
    for leak in ('File "', ".py", "Traceback", "site-packages", '", line ', "'input'", "{'type'"):
        assert leak not in message, f"{case}: {message}"


def test_nan_is_refused_naming_the_field(stack, api_key):
    status, text = send(stack, "POST", "/v1/chat/completions", chat(stack, temperature="NaN"), api_key)
    assert status == 400 and "temperature" in json.loads(text)["error"]["message"]


def test_the_guards_answer_in_the_same_shape(stack, api_key):
    for status, text in [
        send(stack, "POST", "/v1/chat/completions", chat(stack), None),  # no key
        send(stack, "POST", "/v1/chat/completions", b"x" * 1_100_000, api_key),  # too large
    ]:
        assert status in (401, 413)
        assert set(json.loads(text)["error"]) == {"message", "type", "code"}


def test_a_web_page_cannot_call_the_api(stack, api_key):
    """A page on another origin would send an Origin header (and text/plain to skip the preflight)."""
    request = urllib.request.Request(stack.api_base + "/chat/completions", data=chat(stack), method="POST")
    request.add_header("Content-Type", "text/plain")
    request.add_header("Origin", "http://evil.example")
    request.add_header("Authorization", f"Bearer {api_key}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403


def test_ready_says_when_a_model_answers(stack, api_key):
    good = {"Authorization": f"Bearer {api_key}"}
    status, body = http("GET", stack.parts["api"].url + "/ready", headers=good)
    assert status == 200 and body == {"ready": True, "models": [stack.model_name]}
    status, body = http("GET", stack.parts["api"].url + "/ready?model=gpt-4", headers=good)
    assert status == 503 and body["error"]["code"] == "not_ready"
    assert stack.ready() and stack.ready(stack.model_name) and not stack.ready("gpt-4")
