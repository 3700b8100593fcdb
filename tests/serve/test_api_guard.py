"""The API server's own checks, without a stack: the key and size guard, and the chat message rules."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from serve.api import Guard, chat_messages_problem


async def echo(scope, receive, send):
    """An ASGI app that answers with the body it received."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def post(app, content, headers=None) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/v1/chat/completions", content=content, headers=headers or {})

    return asyncio.run(go())


def test_key_required_on_every_path_and_compared_exactly():
    app = Guard(echo, api_keys=["k-one", "k-two"], max_request_bytes=100)
    assert post(app, b"x").status_code == 401
    assert post(app, b"x", {"Authorization": "Bearer k-on"}).status_code == 401
    assert post(app, b"x", {"Authorization": "Basic k-one"}).status_code == 401
    ok = post(app, "نعم".encode(), {"Authorization": "Bearer k-two"})
    assert ok.status_code == 200 and ok.text == "نعم"  # the body reaches the app unchanged


def test_body_bound_with_and_without_a_declared_length():
    app = Guard(echo, api_keys=[], max_request_bytes=100)
    assert post(app, b"x" * 100).status_code == 200
    assert post(app, b"x" * 101).status_code == 413  # Content-Length says so

    async def chunked():  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * 30

    refused = post(app, chunked())
    assert refused.status_code == 413 and "max_request_bytes" in refused.json()["error"]["message"]


U, A = "user", "assistant"


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"role": U, "content": "\u200fما البديل؟\u200f"}], None),
        ([{"role": "system", "content": ""}, {"role": U, "content": "Hi"}], None),
        ([{"role": U, "content": "a"}, {"role": A, "content": "b"}, {"role": U, "content": "ج"}], None),
        ("a raw prompt, FastChat's extension", None),
        ([], "messages is empty"),
        ([{"role": U, "content": "a"}, {"role": U, "content": "b"}], "messages[1]: expected a assistant message"),
        ([{"role": A, "content": "a"}], "messages[0]: expected a user message"),
        ([{"role": U, "content": "a"}, {"role": A, "content": "b"}], "the last message must be a user message"),
        ([{"role": U, "content": "  "}], "messages[0]: empty user message"),
        ([{"role": U, "content": "a"}, {"role": "system", "content": "s"}], "messages[1]: a system message may only come first"),
        ([{"role": "tool", "content": "a"}], "messages[0]: role 'tool'"),
        ([{"role": U, "content": [{"type": "text", "text": "a"}]}], "messages[0]: content must be a string"),
    ],
)  # fmt: skip
def test_chat_messages_the_template_could_not_render_are_named(messages, problem):
    found = chat_messages_problem(messages)
    assert found == problem if problem is None else found.startswith(problem)
