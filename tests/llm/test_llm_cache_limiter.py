"""The content-addressed SQLite cache and the requests/tokens-per-minute limiter."""

from __future__ import annotations

import asyncio
import sqlite3

from data_prep.llm.cache import Cache, CachedCompletion, cache_key
from data_prep.llm.limiter import RateLimiter

MESSAGES = [{"role": "user", "content": "ما هو العلاج؟"}]


def test_key_covers_endpoint_model_messages_and_parameters():
    key = cache_key("http://h/v1|m", MESSAGES, {"temperature": 0.0, "max_tokens": 10})
    assert key == cache_key("http://h/v1|m", MESSAGES, {"max_tokens": 10, "temperature": 0.0})  # order-free
    assert (
        len(
            {
                key,
                cache_key("http://other/v1|m", MESSAGES, {"temperature": 0.0, "max_tokens": 10}),
                cache_key("http://h/v1|m2", MESSAGES, {"temperature": 0.0, "max_tokens": 10}),
                cache_key(
                    "http://h/v1|m",
                    [{"role": "user", "content": "ما هو العلاج"}],
                    {"temperature": 0.0, "max_tokens": 10},
                ),
                cache_key("http://h/v1|m", MESSAGES, {"temperature": 0.7, "max_tokens": 10}),
                cache_key("http://h/v1|m", MESSAGES, {"temperature": 0.0, "max_tokens": 10, "seed": 1}),
            }
        )
        == 6
    )


def test_rows_survive_the_connection_and_the_database_is_in_wal_mode(tmp_path):
    path = tmp_path / "c.sqlite"
    with Cache(path) as cache:
        cache.put("k", "scope", {"messages": MESSAGES}, CachedCompletion("نعم", "stop", 3, 1))
        cache.put("k", "scope", {"messages": MESSAGES}, CachedCompletion("later", "stop", 3, 1))  # first answer stays
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Cache(path) as cache:
        assert cache.get("k") == CachedCompletion("نعم", "stop", 3, 1)
        assert cache.get("other") is None and len(cache) == 1


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_text("not a database " * 100)
    try:
        Cache(path)
    except ValueError as err:
        assert "c.sqlite: not a usable cache database" in str(err)
    else:
        raise AssertionError("expected an error")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run_acquires(limiter, clock, tokens, count):
    """Acquire `count` times on a fake clock; sleeping advances the clock. Returns the start times."""
    starts = []

    async def fake_sleep(seconds):
        clock.now += seconds

    async def main():
        original = asyncio.sleep
        asyncio.sleep = fake_sleep
        try:
            for _ in range(count):
                await limiter.acquire(tokens)
                starts.append(clock.now)
        finally:
            asyncio.sleep = original

    asyncio.run(main())
    return starts


def test_requests_per_minute_are_spread_evenly():
    clock = FakeClock()
    starts = run_acquires(RateLimiter(rpm=600, tpm=None, clock=clock), clock, 1, 700)
    # a burst of one second's worth (10), then 10 per second: 700 requests take 69 s
    assert 68.9 <= starts[-1] <= 69.1
    for i in range(0, len(starts), 7):
        assert sum(starts[i] <= s < starts[i] + 60.0 for s in starts) <= 600 * (1 + 1 / 60)
        assert sum(starts[i] <= s < starts[i] + 1.0 for s in starts) <= 20


def test_tokens_per_minute_bound_large_requests_and_settling_gives_tokens_back():
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=60_000, clock=clock)  # 1,000 tokens per second
    starts = run_acquires(limiter, clock, 500, 6)
    assert 1.9 <= starts[-1] <= 2.1  # 3,000 tokens at 1,000/s after a 1,000 burst
    limiter.settle(500, 100)  # the last request used 100 of its 500 estimated tokens
    assert limiter.tokens.level >= 400 - 1e-6


def test_a_retry_after_pauses_everyone():
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
    limiter.pause_for(2.5)
    assert run_acquires(limiter, clock, 1, 2) == [2.5, 2.5]
