"""The client against a real HTTP server on 127.0.0.1 that injects faults: retries, limits, cache, usage."""

from __future__ import annotations

import asyncio
import time

import pytest

from data_prep.llm.cache import Cache
from data_prep.llm.client import EndpointFatal, LLMClient, RequestRefused, RetriesExhausted
from data_prep.llm.testing.fake_server import FakeServer


def ask(endpoint, cache_path, *prompts, **params):
    """Send one chat per prompt concurrently; returns (completions or exceptions, usage)."""

    async def main():
        with Cache(cache_path) as cache:
            async with LLMClient(endpoint, cache) as llm:
                calls = [
                    llm.chat([{"role": "user", "content": p}], temperature=0.0, max_tokens=50, **params)
                    for p in prompts
                ]
                results = await asyncio.gather(*calls, return_exceptions=True)
                return results, llm.usage

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("429:0.1", "http 429"),
        ("429-bare", "http 429"),
        ("500", "http 500"),
        ("503", "http 503"),
        ("malformed", "malformed body"),
        ("empty", "malformed body"),
        ("drop", "connection dropped"),
        ("slow:1", "timeout"),
    ],
)
def test_retryable_faults_are_retried_until_an_answer(fake_server, endpoint_for, tmp_path, fault, cause):
    fake_server.push(fault)
    (result,), usage = ask(endpoint_for(fake_server, timeout_s=0.5), tmp_path / "c.sqlite", "ما هي أعراض الربو؟")
    assert result.content.startswith("OK ") and not result.cached
    assert usage.retries == {cause: 1} and usage.requests == 2 and usage.completions == 1
    assert [e.fault for e in fake_server.log] == [fault, "ok"]
    assert [e.replied for e in fake_server.log] == [False, True]


def test_retry_after_is_honoured_and_pauses_every_request(fake_server, endpoint_for, tmp_path):
    fake_server.push("429:0.6")
    results, _ = ask(endpoint_for(fake_server, concurrency=1), tmp_path / "c.sqlite", "first", "second")
    assert all(not isinstance(r, Exception) for r in results)
    first, *later = fake_server.log
    assert first.status == 429
    assert all(e.time - first.time >= 0.6 for e in later)


@pytest.mark.parametrize(("status", "error"), [("400", RequestRefused), ("401", EndpointFatal), ("404", EndpointFatal)])
def test_errors_a_retry_cannot_fix_are_not_retried(fake_server, endpoint_for, tmp_path, status, error):
    fake_server.push(status)
    (result,), usage = ask(endpoint_for(fake_server), tmp_path / "c.sqlite", "hello")
    assert isinstance(result, error) and f"HTTP {status}" in str(result)
    assert len(fake_server.log) == 1 and usage.retries == {}


def test_retries_end_with_a_clear_error(fake_server, endpoint_for, tmp_path):
    fake_server.push("500", "500", "500", "500")
    (result,), usage = ask(endpoint_for(fake_server, max_retries=2), tmp_path / "c.sqlite", "hello")
    assert isinstance(result, RetriesExhausted) and "3 attempts failed, last: http 500" in str(result)
    assert len(fake_server.log) == 3 and usage.failures == {"retries exhausted": 1}


def test_a_finished_call_is_never_sent_again(fake_server, endpoint_for, tmp_path):
    endpoint = endpoint_for(fake_server)
    (first,), _ = ask(endpoint, tmp_path / "c.sqlite", "hello")
    (again,), usage = ask(endpoint, tmp_path / "c.sqlite", "hello")  # a new client, the same cache file
    assert again.cached and again.content == first.content and usage.requests == 0 and usage.cache_hits == 1
    (other,), _ = ask(endpoint, tmp_path / "c.sqlite", "hello", seed=7)  # other parameters: another call
    assert not other.cached
    assert len(fake_server.log) == 2


def test_identical_calls_in_flight_share_one_request(endpoint_for, tmp_path):
    with FakeServer(latency=0.2) as server:
        results, usage = ask(endpoint_for(server), tmp_path / "c.sqlite", *["same"] * 5)
    assert len({r.content for r in results}) == 1
    assert len(server.log) == 1 and usage.shared_in_flight == 4


def test_concurrency_is_bounded(endpoint_for, tmp_path):
    with FakeServer(latency=0.1) as server:
        results, _ = ask(endpoint_for(server, concurrency=4), tmp_path / "c.sqlite", *[f"q{i}" for i in range(24)])
    assert not any(isinstance(r, Exception) for r in results)
    assert server.max_in_flight == 4


def test_requests_per_minute_limit_holds_over_http(fake_server, endpoint_for, tmp_path):
    start = time.time()
    results, _ = ask(endpoint_for(fake_server, rpm=600), tmp_path / "c.sqlite", *[f"q{i}" for i in range(25)])
    assert not any(isinstance(r, Exception) for r in results)
    # A burst of 10, then 15 more at 10 per second: the last cannot be sent before 1.5 s after the
    # start. Measured from the client's start, so a slow machine (late first request) cannot fail it.
    assert max(e.time for e in fake_server.log) - start >= 1.45


def test_usage_and_cost_are_counted(fake_server, endpoint_for, tmp_path):
    endpoint = endpoint_for(fake_server, price_per_1k_input=2.0, price_per_1k_output=10.0)
    results, usage = ask(endpoint, tmp_path / "c.sqlite", "a" * 400, "b" * 40)
    assert usage.prompt_tokens == sum(r.prompt_tokens for r in results) == 100 + 10
    assert usage.completion_tokens == sum(r.completion_tokens for r in results) > 0
    assert usage.cost(endpoint) == pytest.approx(110 / 1000 * 2.0 + usage.completion_tokens / 1000 * 10.0)
    summary = usage.summary(endpoint)
    assert summary["completions_paid"] == 2 and summary["estimated_cost_usd"] > 0
