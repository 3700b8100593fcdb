"""A fault-injection OpenAI-compatible server for tests and benchmarks: real HTTP on 127.0.0.1.

    with FakeServer(script=["429:1", "500", "malformed"]) as server:
        ... requests to server.base_url (".../v1") ...
    server.log  # one entry per request: time, body key, fault, status, whether a reply was sent

Run alone (the benchmark runs it in its own process, so it does not share the client's loop):

    python -m data_prep.llm.testing.fake_server --latency 0.2 [--port 0]

Faults, each consumed by one request in order from `script`, or applied to the first attempt of
every distinct request body with `first_attempt`:
  ok | 429[:seconds] (Retry-After, default 1) | 429-bare (no Retry-After) | 500 | 503 | 400 | 401 |
  slow:seconds (sleep, then answer) | malformed (HTTP 200, a truncated JSON body) |
  empty (HTTP 200, a completion without choices) | drop (close the connection, no reply)

Replies are deterministic functions of the request (FakeLLM):
- translation prompts (<seg id="..."> blocks): each block translated word by word with the prompt's
  glossary and a small dictionary (dictionary.tsv), English->Arabic or Arabic->English by script;
  placeholders ⟦n⟧ are copied. Unknown English words stay English (the checks then fail), unless
  the prompt names failures (<failures>) and fix_on_retry is on: then they are transliterated,
  reversibly, so the retry passes. A real pipeline path, through real HTTP, end to end.
  With `untagged`, the blocks come back without their tags (a model that ignores the format).
- with `nonsense`, every reply is gibberish, as the tiny random model's is.
- synthesis prompts ("Question:" ... "Correct answer:"): a patient/doctor chat whose last doctor
  turn states the correct answer; the first `bad_chats` attempts per question are invalid in
  turn (an option-letter leak, non-alternating roles, too few turns, a distractor as the answer).
- anything else: "OK <hash>", a short reply for throughput measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import regex
from aiohttp import web

from data_prep.llm.text import arabic_ratio

HERE = Path(__file__).resolve().parent
DICTIONARY = HERE / "dictionary.tsv"

_SEG = re.compile(r'<seg id="([^"]+)">(.*?)</seg>', re.DOTALL)
_GLOSSARY_LINE = re.compile(r"^- (.+?) -> (.+)$", re.MULTILINE)
_TOKEN = regex.compile(r"⟦\d+⟧|[A-Za-z]+(?:'[a-z]+)?|\p{Script=Arabic}+|\s+|.", regex.DOTALL)
_PUNCT_AR = {"?": "؟", ",": "،", ";": "؛"}
_PUNCT_EN = {v: k for k, v in _PUNCT_AR.items()}
# A reversible Latin -> Arabic-script letter map for "transliterating" unknown words.
_TRANSLIT = dict(zip("abcdefghijklmnopqrstuvwxyz", "ابكدعفغهيجقلمنوطحرستضظصخشز", strict=True))
_UNTRANSLIT = {v: k for k, v in _TRANSLIT.items()}


def body_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _load_dictionary(path: Path) -> dict[str, str]:
    words = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        english, _, arabic = line.partition("\t")
        words[english.strip().lower()] = arabic.strip()
    return words


class FakeLLM:
    """Deterministic replies derived from the request (see the module docstring)."""

    def __init__(
        self,
        dictionary: Path = DICTIONARY,
        fix_on_retry: bool = True,
        bad_chats: int = 0,
        untagged: bool = False,
        nonsense: bool = False,
    ):
        self.en_ar = _load_dictionary(dictionary)
        self.ar_en = {ar: en for en, ar in self.en_ar.items() if ar}
        self.fix_on_retry = fix_on_retry
        self.bad_chats = bad_chats
        self.untagged = untagged  # translations come back without <seg> tags (a model that ignores the format)
        self.nonsense = nonsense  # every reply is gibberish, as from the tiny random model
        self._chat_attempts: Counter = Counter()
        self._lock = threading.Lock()

    def reply(self, messages: list[dict]) -> str:
        user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        if self.nonsense:
            digest = hashlib.sha256(user.encode()).hexdigest()
            return " ".join(digest[i : i + 5] for i in range(0, 40, 5)) + " ضصث"
        if _SEG.search(user):
            return self._translate(user)
        if "Question:" in user and "Correct answer:" in user:
            return self._chat(user)
        return "OK " + hashlib.sha256(user.encode()).hexdigest()[:8]

    # -- translation -------------------------------------------------------------------------
    def _translate(self, prompt: str) -> str:
        segments: dict[str, str] = {}
        for seg_id, text in _SEG.findall(prompt):  # a retry prompt repeats ids: the last block wins
            segments.pop(seg_id, None)
            segments[seg_id] = text
        glossary = dict(_GLOSSARY_LINE.findall(prompt))
        fix = self.fix_on_retry and "<failures>" in prompt
        source = " ".join(segments.values())
        to_arabic = arabic_ratio(regex.sub(r"⟦\d+⟧", "", source)) < 0.5
        out = []
        for seg_id, text in segments.items():
            if to_arabic:
                table = {k.lower(): v for k, v in glossary.items()} | self.en_ar
                translated = self._words(text, table, fix, to_arabic=True)
            else:
                table = {k: v.lower() for k, v in glossary.items()} | self.ar_en
                translated = self._words(text, table, True, to_arabic=False)
            out.append(translated if self.untagged else f'<seg id="{seg_id}">{translated}</seg>')
        return "\n".join(out)

    @staticmethod
    def _words(text: str, table: dict[str, str], fix: bool, to_arabic: bool) -> str:
        tokens = _TOKEN.findall(text)
        longest = max((len(re.split(r"[\s-]+", k)) for k in table), default=1)
        out: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            is_word = regex.fullmatch(r"[A-Za-z]+(?:'[a-z]+)?|\p{Script=Arabic}+", token) is not None
            if not is_word:
                out.append((_PUNCT_AR if to_arabic else _PUNCT_EN).get(token, token))
                i += 1
                continue
            matched = False
            # try the longest phrase first: words joined by single spaces or hyphens
            for n in range(longest * 2 - 1, 0, -2):
                span = tokens[i : i + n]
                if len(span) < n or any(not (t.isspace() or t == "-") for t in span[1::2]):
                    continue
                phrase = "".join(span).lower()
                phrase = re.sub(r"\s+", " ", phrase)
                for candidate in (phrase, phrase[:-1] if to_arabic and phrase.endswith("s") else None):
                    if candidate and candidate in table:
                        out.append(table[candidate])
                        i += n
                        matched = True
                        break
                if matched:
                    break
            if matched:
                continue
            if to_arabic:
                out.append("".join(_TRANSLIT.get(c, c) for c in token.lower()) if fix else token)
            else:
                untranslit = "".join(_UNTRANSLIT.get(c, "") for c in token)
                out.append(untranslit if len(untranslit) == len(token) else token)
            i += 1
        return re.sub(r"[ \t]{2,}", " ", "".join(out)).strip()

    # -- synthesis ---------------------------------------------------------------------------
    def _chat(self, prompt: str) -> str:
        question = re.search(r"^Question: (.*)$", prompt, re.MULTILINE).group(1).strip()
        answer = re.search(r"^Correct answer: (.*)$", prompt, re.MULTILINE).group(1).strip()
        options_block = re.search(r"^Options:\n((?:- .*\n?)+)", prompt, re.MULTILINE)
        options = [o[2:].strip() for o in options_block.group(1).splitlines()] if options_block else []
        distractor = next((o for o in options if o != answer), "rest")
        with self._lock:
            attempt = self._chat_attempts[question]
            self._chat_attempts[question] += 1
        story = re.split(r"(?<=[.!])\s", question)[0].rstrip("?")
        turns = [
            ("Patient", f"Doctor, I am worried. My story is this: {story.lower()}"),
            (
                "Doctor",
                "I am sorry to hear that. When did it start, and do you have any other illness or take any medicine?",
            ),
            ("Patient", "It started recently. I have no other illness and I take no medicine."),
            ("Doctor", "Thank you. Have you noticed anything else, such as weight loss or night sweats?"),
            ("Patient", "No, nothing else."),
            (
                "Doctor",
                f"From what you describe, this fits best with: {answer}. Please see a clinician in person to confirm it and plan care.",
            ),
        ]
        if attempt < self.bad_chats:
            kind = attempt % 4
            if kind == 0:  # leaks the exam
                turns[-1] = ("Doctor", f"The correct option is (B): {answer}.")
            elif kind == 1:  # two patient turns in a row
                turns.insert(2, ("Patient", "Also, I feel tired."))
            elif kind == 2:  # too short
                turns = [turns[0], turns[-1]]
            else:  # reaches a distractor
                turns[-1] = ("Doctor", f"From what you describe, this fits best with: {distractor}.")
        return "\n".join(f"{role}: {text}" for role, text in turns)


@dataclass
class LogEntry:
    time: float
    key: str  # sha256 of the request body
    body: dict
    fault: str
    status: int | None = None  # None: connection dropped or abandoned by the client
    replied: bool = False  # a complete, valid completion was sent


@dataclass
class FakeServer:
    """The server, in a thread of the calling process (use as a context manager) or in its own process."""

    latency: float = 0.0
    script: list[str] = field(default_factory=list)
    first_attempt: str | None = None
    fix_on_retry: bool = True
    bad_chats: int = 0
    untagged: bool = False
    nonsense: bool = False
    model: str = "fake-model"
    dictionary: Path = DICTIONARY
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self):
        self.log: list[LogEntry] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script = deque(self.script)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.llm = FakeLLM(self.dictionary, self.fix_on_retry, self.bad_chats, self.untagged, self.nonsense)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def push(self, *faults: str) -> None:
        with self._lock:
            self._script.extend(faults)

    def replied_keys(self) -> Counter:
        return Counter(e.key for e in self.log if e.replied)

    # -- HTTP ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def _next_fault(self, key: str) -> str:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self.first_attempt and key not in self._seen:
                self._seen.add(key)
                return self.first_attempt
            self._seen.add(key)
            return "ok"

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        key = body_key(body)
        fault = self._next_fault(key)
        entry = LogEntry(time.time(), key, body, fault)
        self.log.append(entry)
        if self.latency:
            await asyncio.sleep(self.latency)
        name, _, argument = fault.partition(":")
        if name == "slow":
            await asyncio.sleep(float(argument or 5))
        elif name == "drop":
            request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the handler; the client sees a closed connection
        elif name == "429":
            entry.status = 429
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit"}},
                status=429,
                headers={"Retry-After": argument or "1"},
            )
        elif name == "429-bare":
            entry.status = 429
            return web.json_response({"error": {"message": "rate limited"}}, status=429)
        elif name.isdigit() and name != "200":
            entry.status = int(name)
            return web.json_response({"error": {"message": f"injected {name}"}}, status=int(name))
        elif name == "malformed":
            entry.status = 200
            return web.Response(
                text='{"id": "chatcmpl-x", "choices": [{"message": {"content": "tru', content_type="application/json"
            )
        elif name == "empty":
            entry.status = 200
            return web.json_response({"id": "chatcmpl-x", "object": "chat.completion", "choices": []})
        content = self.llm.reply(body.get("messages") or [])
        finish = "stop"
        max_tokens = body.get("max_tokens")
        completion_tokens = math.ceil(len(content) / 4)
        if isinstance(max_tokens, int) and completion_tokens > max_tokens:
            content, finish, completion_tokens = content[: max_tokens * 4], "length", max_tokens
        prompt_tokens = math.ceil(sum(len(m.get("content") or "") for m in body.get("messages") or []) / 4)
        reply = {
            "id": "chatcmpl-" + key[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        response = web.json_response(reply)
        entry.status = 200
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:  # the client gave up (its timeout) while we were slow
            return response
        entry.replied = True
        return response

    # -- lifecycle ----------------------------------------------------------------------------
    async def _start(self, sock: socket.socket | None = None) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, backlog=1024)
        await site.start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> FakeServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-llm-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def serve_forever(self, ready_file: Path | None = None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # before announcing: a prompt SIGTERM still stops cleanly
            loop.add_signal_handler(sig, stop.set)
        await self._start()
        if ready_file is not None:  # atomically: a reader never sees half a URL
            partial = ready_file.with_name(ready_file.name + ".partial")
            partial.write_text(self.base_url + "\n")
            partial.replace(ready_file)
        print(f"fake LLM server on {self.base_url} (latency {self.latency}s)", flush=True)
        await stop.wait()
        await self._stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.llm.testing.fake_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--first-attempt", default=None, help="fault for the first attempt of every distinct body")
    parser.add_argument("--bad-chats", type=int, default=0, help="invalid synthesis replies per question first")
    parser.add_argument("--no-fix-on-retry", action="store_true", help="re-translations stay as bad as the first")
    parser.add_argument("--untagged", action="store_true", help="translations without <seg> tags")
    parser.add_argument("--nonsense", action="store_true", help="gibberish replies, like the tiny random model")
    parser.add_argument("--ready-file", type=Path, default=None, help="write the base URL here once listening")
    parser.add_argument("script", nargs="*", help="faults for the first requests, in order")
    args = parser.parse_args(argv)
    server = FakeServer(
        latency=args.latency,
        script=args.script,
        first_attempt=args.first_attempt,
        fix_on_retry=not args.no_fix_on_retry,
        bad_chats=args.bad_chats,
        untagged=args.untagged,
        nonsense=args.nonsense,
        port=args.port,
    )
    asyncio.run(server.serve_forever(args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
