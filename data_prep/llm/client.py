"""The one way this stage talks to an LLM: chat completions on any OpenAI-compatible endpoint.

`openai.AsyncOpenAI` with its own retries off (max_retries=0) under this module's loop:
- bounded concurrency (an asyncio semaphore around each attempt),
- a requests- and tokens-per-minute limiter (limiter.py); a 429's Retry-After pauses everyone,
- retries with exponential backoff and full jitter on 429, 408, 409, 5xx, timeouts, dropped
  connections and malformed bodies (invalid JSON, no choices, no message content),
- a per-request deadline (connect to last byte),
- the cache (cache.py): a finished call is stored before it is returned, and a call already in
  the cache, or already in flight in this process, is never sent again,
- usage counted (tokens reported by the server; estimated from characters when it reports none)
  and priced with the endpoint's price per 1k input/output tokens.

Errors a retry cannot fix: 400/413/422 raise RequestRefused (that item fails, the run goes on);
401/403/404 raise EndpointFatal (wrong key, model or URL: the whole run stops).

A connection refused, a name that does not resolve or a TLS handshake that fails, before the
endpoint has answered anything in this run, raises EndpointUnreachable (an EndpointFatal): the run
stops at once with one line naming the endpoint, instead of every item retrying into the void.
Once the endpoint has answered, the same failures are retried (a server being restarted); the
cause each retry and failure records says what happened: "connection refused", "DNS failure",
"TLS failure", "connection dropped", "timeout".
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx2
import openai

from data_prep.llm.cache import Cache, CachedCompletion, cache_key
from data_prep.llm.config import Endpoint
from data_prep.llm.errors import (
    EndpointFatal,
    EndpointUnreachable,
    LLMError,
    MalformedResponse,
    RequestRefused,
    RetriesExhausted,
)
from data_prep.llm.limiter import RateLimiter

__all__ = [
    "Completion",
    "EndpointFatal",
    "EndpointUnreachable",
    "LLMClient",
    "LLMError",
    "RequestRefused",
    "RetriesExhausted",
    "Usage",
]

RETRY_STATUSES = {408, 409, 429}
FATAL_STATUSES = {401, 403, 404}


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    key: str


@dataclass
class Usage:
    requests: int = 0  # HTTP attempts sent
    completions: int = 0  # finished calls paid for in this run
    cache_hits: int = 0
    shared_in_flight: int = 0  # identical calls in this run answered by one request
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_usage: int = 0  # completions whose usage the server did not report (estimated)
    retries: Counter = field(default_factory=Counter)  # cause -> count
    failures: Counter = field(default_factory=Counter)

    def cost(self, endpoint: Endpoint) -> float:
        c = endpoint.client
        return self.prompt_tokens / 1000 * c.price_per_1k_input + self.completion_tokens / 1000 * c.price_per_1k_output

    def summary(self, endpoint: Endpoint) -> dict:
        return {
            "requests_sent": self.requests,
            "completions_paid": self.completions,
            "cache_hits": self.cache_hits,
            "shared_in_flight": self.shared_in_flight,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "usage_estimated_for": self.estimated_usage,
            "estimated_cost_usd": round(self.cost(endpoint), 6),
            "retries": dict(sorted(self.retries.items())),
            "failures": dict(sorted(self.failures.items())),
        }

    def line(self, endpoint: Endpoint) -> str:
        retries = sum(self.retries.values())
        return (
            f"{self.completions} calls paid, {self.cache_hits} from cache, {retries} retries, "
            f"{self.prompt_tokens:,} + {self.completion_tokens:,} tokens, ~${self.cost(endpoint):.4f}"
        )


def retry_after_seconds(headers) -> float | None:
    """Seconds a server asks us to wait: retry-after-ms, else Retry-After (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# Causes that mean nothing listens at the endpoint, or the name or the TLS set-up is wrong.
UNREACHABLE = ("connection refused", "DNS failure", "TLS failure")


def _causes(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def connection_cause(err: BaseException) -> tuple[str, str]:
    """(cause, detail) of a failed connection, from the chain of exceptions under the client's error.

    The aiohttp transport reports every connect failure as a ConnectTimeout, whatever happened; the
    exception it wraps says what did.
    """
    detail = str(err)
    for link in _causes(err):
        if isinstance(link, ConnectionRefusedError):
            return "connection refused", str(link)
        if isinstance(link, socket.gaierror):
            return "DNS failure", str(link)
        if isinstance(link, ssl.SSLError | ssl.CertificateError):
            return "TLS failure", str(link)
        if isinstance(link, ConnectionResetError | BrokenPipeError) or "disconnect" in str(link).lower():
            return "connection dropped", str(link)
        if isinstance(link, TimeoutError):
            return "timeout", detail
    return ("timeout" if isinstance(err, TimeoutError | openai.APITimeoutError) else "connection dropped"), detail


def _parse(body: bytes) -> tuple[str, str | None, int | None, int | None]:
    """(content, finish_reason, prompt_tokens, completion_tokens) of a chat completion body, checked by hand."""
    try:
        data = json.loads(body)
    except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
        raise MalformedResponse("body is not JSON") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("body has no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise MalformedResponse("first choice has no message content")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        content,
        choices[0].get("finish_reason"),
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


class LLMClient:
    """Use as `async with LLMClient(endpoint, cache) as llm: await llm.chat(messages, ...)`."""

    def __init__(self, endpoint: Endpoint, cache: Cache, *, rng: random.Random | None = None):
        self.endpoint = endpoint
        self.cache = cache
        self.usage = Usage()
        self.limiter = RateLimiter(endpoint.client.rpm, endpoint.client.tpm)
        self._semaphore = asyncio.Semaphore(endpoint.client.concurrency)
        self._in_flight: dict[str, asyncio.Future] = {}
        self._rng = rng or random.Random()
        self._client: openai.AsyncOpenAI | None = None
        self.answered = False  # the endpoint sent an HTTP response in this run (then failures to connect are retried)
        self.unreachable: EndpointUnreachable | None = None  # once found, no other call tries again

    async def __aenter__(self) -> LLMClient:
        timeout = self.endpoint.client.timeout_s
        self._client = openai.AsyncOpenAI(
            base_url=self.endpoint.base_url,
            api_key=self.endpoint.api_key,
            max_retries=0,
            timeout=timeout,
            # aiohttp under httpx2: about half the CPU per request of the default anyio pool at 64-way concurrency
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def estimate_tokens(self, messages: list[dict], max_tokens: int) -> int:
        chars = sum(len(m.get("content") or "") for m in messages)
        return math.ceil(chars / self.endpoint.client.chars_per_token) + max_tokens

    async def chat(
        self,
        messages: list[dict],
        *,
        temperature: float,
        max_tokens: int,
        seed: int | None = None,
        top_p: float | None = None,
    ) -> Completion:
        params = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            params["seed"] = seed
        if top_p is not None:
            params["top_p"] = top_p
        key = cache_key(self.endpoint.cache_scope, messages, params)
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.cache_hits += 1
            return Completion(
                hit.content, hit.finish_reason, hit.prompt_tokens or 0, hit.completion_tokens or 0, True, key
            )
        pending = self._in_flight.get(key)
        if pending is not None:
            self.usage.shared_in_flight += 1
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._call(key, messages, params)
        except BaseException as err:
            if not future.done():
                future.set_exception(err)
                future.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._in_flight[key]

    async def _call(self, key: str, messages: list[dict], params: dict) -> Completion:
        settings = self.endpoint.client
        estimate = self.estimate_tokens(messages, params["max_tokens"])
        last_error = "no attempt"
        for attempt in range(settings.max_retries + 1):
            retry_after = None
            try:
                async with self._semaphore:
                    if self.unreachable is not None:
                        raise EndpointUnreachable(str(self.unreachable))
                    # the limiter inside the slot: a Retry-After pause then also holds requests already queued
                    await self.limiter.acquire(estimate)
                    self.usage.requests += 1
                    async with asyncio.timeout(settings.timeout_s):
                        # The client's own post: auth, base URL, timeouts and its error classes, without the
                        # typed-parameter transform and pydantic parse of .create() (about 3 ms CPU a call).
                        response = await self._client.post(
                            "/chat/completions",
                            cast_to=httpx2.Response,
                            body={"model": self.endpoint.model, "messages": messages, **params},
                        )
                        content, finish_reason, prompt_tokens, completion_tokens = _parse(response.content)
            except openai.APIStatusError as err:
                self.answered = True
                status = err.status_code
                message = _error_message(err)
                if status in FATAL_STATUSES:
                    self.usage.failures[f"http {status}"] += 1
                    raise EndpointFatal(
                        f"{self.endpoint.base_url}: HTTP {status} for model {self.endpoint.model!r}: {message}"
                    ) from None
                if status not in RETRY_STATUSES and status < 500:
                    self.usage.failures[f"http {status}"] += 1
                    raise RequestRefused(f"HTTP {status}: {message}") from None
                cause = f"http {status}"
                retry_after = retry_after_seconds(err.response.headers)
                if status == 429 and retry_after is not None:
                    self.limiter.pause_for(retry_after)
            except (TimeoutError, openai.APITimeoutError, openai.APIConnectionError) as err:
                cause, detail = connection_cause(err)
                if cause in UNREACHABLE and not self.answered:
                    self.usage.failures[cause] += 1
                    self.unreachable = EndpointUnreachable(
                        f"{self.endpoint.base_url}: {cause} ({detail}); nothing answered there, so the run stops: "
                        "is the server running, and are the URL and its scheme right?"
                    )
                    raise self.unreachable from None
            except MalformedResponse as err:
                self.answered = True
                cause = "malformed body"
                last_error = str(err)
            else:
                self.answered = True
                estimated = prompt_tokens is None or completion_tokens is None
                if estimated:
                    self.usage.estimated_usage += 1
                    prompt_tokens = estimate - params["max_tokens"] if prompt_tokens is None else prompt_tokens
                    completion_tokens = (
                        math.ceil(len(content) / settings.chars_per_token)
                        if completion_tokens is None
                        else completion_tokens
                    )
                self.limiter.settle(estimate, prompt_tokens + completion_tokens)
                cached = CachedCompletion(content, finish_reason, prompt_tokens, completion_tokens)
                self.cache.put(key, self.endpoint.cache_scope, {"messages": messages, "params": params}, cached)
                self.usage.completions += 1
                self.usage.prompt_tokens += prompt_tokens
                self.usage.completion_tokens += completion_tokens
                return Completion(content, finish_reason, prompt_tokens, completion_tokens, False, key)
            if cause != "malformed body":
                last_error = cause
            if attempt == settings.max_retries:
                break
            self.usage.retries[cause] += 1
            await asyncio.sleep(self._backoff(attempt, retry_after))
        self.usage.failures["retries exhausted"] += 1
        raise RetriesExhausted(f"{settings.max_retries + 1} attempts failed, last: {last_error}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        c = self.endpoint.client
        if retry_after is not None:  # honour the server; a little jitter so waiters do not return together
            return retry_after + self._rng.uniform(0, c.backoff_base_s)
        return self._rng.uniform(0, min(c.backoff_cap_s, c.backoff_base_s * 2**attempt))


def _error_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
        if body.get("message"):
            return str(body["message"])[:200]
    try:
        return json.dumps(body)[:200] if body is not None else err.message[:200]
    except (TypeError, ValueError):
        return str(body)[:200]
