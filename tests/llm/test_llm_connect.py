"""An endpoint nobody answers at stops an LLM stage within seconds, with one line naming it.

A stage pointed at a closed port took 350 s to fail 200 items (1,800 connection attempts), and
each item's reason said "timeout" although every connection was refused at once. Now a refused
connection, a name that does not resolve or a failed TLS handshake, before the endpoint has ever
answered, stops the run; once it has answered, the same failures are retried (a server being
restarted), and timeouts keep their retries. Real sockets on 127.0.0.1 throughout; the DNS case
replaces the resolver for one made-up name (a test sends no query to a real DNS server).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import pytest

from bimedix.paths import ROOT
from data_prep.llm.cache import Cache
from data_prep.llm.client import EndpointFatal, LLMClient, RetriesExhausted
from data_prep.llm.config import ClientSettings, Endpoint
from data_prep.llm.testing.fake_server import FakeServer

FAST = {"timeout_s": 5.0, "max_retries": 3, "backoff_base_s": 0.02, "backoff_cap_s": 0.1, "concurrency": 8}
UNRESOLVABLE = "llm-endpoint.bimedix-test.invalid"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def ask_many(endpoint: Endpoint, cache_path, count: int = 20):
    async def main():
        with Cache(cache_path) as cache:
            async with LLMClient(endpoint, cache) as llm:
                calls = [
                    llm.chat([{"role": "user", "content": f"q{i}"}], temperature=0, max_tokens=8) for i in range(count)
                ]
                return await asyncio.gather(*calls, return_exceptions=True), llm.usage

    return asyncio.run(main())


@pytest.fixture
def fake_dns(monkeypatch):
    """UNRESOLVABLE fails to resolve as a missing name would; every other name resolves as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == UNRESOLVABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        (lambda server: f"http://127.0.0.1:{closed_port()}/v1", "connection refused"),
        (lambda server: f"http://{UNRESOLVABLE}:8000/v1", "DNS failure"),
        (lambda server: server.base_url.replace("http://", "https://"), "TLS failure"),  # TLS to a plain HTTP port
    ],
    ids=["refused", "dns", "tls"],
)
def test_nothing_answering_stops_at_once_naming_the_endpoint(fake_server, fake_dns, tmp_path, url, cause):
    base_url = url(fake_server)
    endpoint = Endpoint(base_url, "m", client=ClientSettings(**FAST))
    start = time.monotonic()
    results, usage = ask_many(endpoint, tmp_path / "c.sqlite")
    assert time.monotonic() - start < 10
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == len(results)
    assert all(isinstance(e, EndpointFatal) and type(e).__name__ == "EndpointUnreachable" for e in errors), errors
    message = str(errors[0])
    assert message.startswith(f"{base_url}: {cause} (") and "\n" not in message, message
    assert usage.retries == {}  # not one retry: the first attempt of each call said enough
    assert usage.requests <= FAST["concurrency"]


def test_once_the_endpoint_answered_refusals_are_retried_and_named(endpoint_for, tmp_path):
    """A server that answered and then went away (restarting) is retried; the item's reason says what happened."""
    server = FakeServer().__enter__()
    endpoint = endpoint_for(server, max_retries=2, timeout_s=2.0)

    async def main():
        with Cache(tmp_path / "c.sqlite") as cache:
            async with LLMClient(endpoint, cache) as llm:
                first = await llm.chat([{"role": "user", "content": "first"}], temperature=0, max_tokens=8)
                server.__exit__(None, None, None)  # nothing listens on its port any more
                try:
                    await llm.chat([{"role": "user", "content": "second"}], temperature=0, max_tokens=8)
                except RetriesExhausted as err:
                    return first, err, llm.usage
        raise AssertionError("the second call should have failed")

    first, error, usage = asyncio.run(main())
    assert first.content
    assert "3 attempts failed, last: connection refused" in str(error)
    # (a pooled keep-alive connection the server closed may first show as a dropped connection)
    assert usage.retries["connection refused"] >= 1 and set(usage.retries) <= {
        "connection refused",
        "connection dropped",
    }


def test_a_stage_against_a_closed_port_exits_within_seconds_with_one_line(tmp_path):
    endpoint = tmp_path / "endpoint.yaml"
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    endpoint.write_text(json.dumps({"base_url": base_url, "model": "m"}))
    items = tmp_path / "items.jsonl"
    rows = [{"id": f"q{i}", "question": f"Question {i} about anaemia?", "options": "(A) iron\n(B) zinc", "answer": "(A)"}
            for i in range(200)]  # fmt: skip
    items.write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = [sys.executable, "-m", "data_prep.llm", "translate", "--input", str(items), "--endpoint", str(endpoint),
               "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"), "--no-progress"]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and f"error: {base_url}: connection refused" in errors[0], done.stderr
    assert elapsed < 30, f"took {elapsed:.1f} s"  # the interpreter's start included; the failure itself is at once
