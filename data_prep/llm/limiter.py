"""Requests-per-minute and tokens-per-minute limiting for asyncio, and a shared pause for 429s.

Two token buckets refill continuously at limit/60 per second. Each holds at most one second of
its limit (at least one request, at least the largest single request), so the rate is smooth,
as providers enforce it, rather than a whole minute's burst at start: over any 60 s window no
more than limit * (1 + 1/60) passes. A request's token cost is estimated before it is sent
(prompt characters / chars_per_token + max_tokens, as OpenAI counts it) and settled on the
usage the server reports, so over-estimates are given back. Waiters are served in arrival order.
A 429's Retry-After pauses every request, not only the one that got it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, per_minute: float, clock: Callable[[], float]):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # one second's worth, at least one unit
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` is available (0 when it is now)."""
        self._refill()
        amount = min(amount, self.capacity)  # a request larger than the bucket waits for a full bucket
        missing = amount - self.level
        return 0.0 if missing <= 1e-9 * max(1.0, amount) else missing / self.rate  # float slack: no endless tiny waits

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= min(amount, self.capacity)

    def give_back(self, amount: float) -> None:
        """Settle an estimate: positive gives tokens back, negative takes more (may go below zero)."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.requests = TokenBucket(rpm, clock) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.waited_s = 0.0  # total time requests spent waiting here (reported)

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, estimated_tokens: float) -> None:
        start = self._clock()
        async with self._lock:  # first come, first served
            while True:
                wait = max(0.0, self._paused_until - self._clock())
                if self.requests is not None:
                    wait = max(wait, self.requests.wait_time(1))
                if self.tokens is not None:
                    wait = max(wait, self.tokens.wait_time(estimated_tokens))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None:
                self.tokens.take(estimated_tokens)
        self.waited_s += self._clock() - start

    def settle(self, estimated_tokens: float, actual_tokens: float) -> None:
        if self.tokens is not None:
            self.tokens.give_back(min(estimated_tokens, self.tokens.capacity) - actual_tokens)

    def pause_for(self, seconds: float) -> None:
        """No request starts before `seconds` from now (a server's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
