"""Doctor-patient chats synthesized from English MCQ items, validated, regenerated, or rejected with a reason.

The prompt (prompts/synthesize.yaml) asks for lines starting "Patient:" / "Doctor:". A reply is
parsed into turns (a preamble before the first label is ignored; **bold** labels are accepted;
continuation lines join their turn) and validated:
- roles alternate, the patient first and the doctor last, at least `min_turns` turns, none empty;
- no turn gives the exam away (settings `leak_patterns`: "option", "which of the following", "(B)", ...);
- the last doctor turn states the correct answer. How that is decided: the correct option's content
  words (lower case, stop words of stopwords_en.txt dropped, numbers kept, a word matching another
  when they are equal or share their first 5 letters) are looked up in the last doctor turn; at
  least `answer_coverage` of them must be there, and no other option that is covered as well may
  match more of its words than the correct one does (so "aspirin" does not pass for "aspirin and
  clopidogrel"). It cannot see negation ("this is not X" counts as naming X).
An invalid chat is generated again with the next seed and a higher temperature (a fresh cache key),
up to `max_attempts` in all, then rejected with the reasons of every attempt. Items whose question or
answer cannot become a conversation (EXCEPT questions, "all of the above", yes/no answers) are
rejected before any call.

Output rows (chat_jsonl): {"id": "<source id>-chat", "messages": [user = patient, assistant = doctor, ...],
"language": "en", "provenance": {...}}. With --keep-unverified the last attempt of a chat that never
passed is written to chats_unverified.jsonl with status "unverified" and its reasons; a reply without
the chat's shape is given one (shape_unverified) and provenance.shaped says how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bimedix.files import sha256_file
from data_prep.llm.cache import Cache
from data_prep.llm.client import EndpointFatal, LLMClient, LLMError
from data_prep.llm.config import HERE, Endpoint, Settings, SynthesizeSettings
from data_prep.llm.files import atomic_writer, json_line, remove_stale_temporaries, write_json
from data_prep.llm.prompts import load_prompt
from data_prep.llm.records import MCQ, Item, Reject, count_rows, read_items
from data_prep.llm.runner import ordered_map, progress_bar
from data_prep.llm.text import ascii_digits

STOPWORDS_FILE = HERE / "stopwords_en.txt"
_LABEL = re.compile(r"^\s*(?:[*_#>-]+\s*)?(patient|doctor)\s*(?:[*_]+\s*)?:\s*(?:[*_]+\s*)?(.*)$", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
ROLE = {"patient": "user", "doctor": "assistant"}
STRUCTURE = "structure"  # failures that make a reply unusable as `messages`, even unverified


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    lines = STOPWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def parse_turns(reply: str) -> list[tuple[str, str]]:
    """[(patient|doctor, text)] from a reply; lines before the first label are ignored."""
    turns: list[list[str]] = []
    for line in reply.splitlines():
        match = _LABEL.match(line)
        if match:
            turns.append([match.group(1).lower(), match.group(2).strip()])
        elif turns and line.strip():
            turns[-1][1] = (turns[-1][1] + "\n" + line.strip()).strip()
    return [(role, text) for role, text in turns]


def content_words(text: str) -> list[str]:
    words = _WORD.findall(ascii_digits(text).lower())
    return [w for w in dict.fromkeys(words) if w not in stopwords() and (len(w) >= 3 or any(c.isdigit() for c in w))]


def _matches(word: str, vocabulary: set[str]) -> bool:
    if word in vocabulary:
        return True
    if len(word) >= 5 and not word[0].isdigit():
        return any(len(v) >= 5 and v[:5] == word[:5] for v in vocabulary)
    return False


def coverage(option: str, text: str) -> tuple[int, int]:
    """(content words of `option` found in `text`, content words of `option`)."""
    words = content_words(option)
    vocabulary = set(content_words(text))
    return sum(_matches(w, vocabulary) for w in words), len(words)


@dataclass
class ChatVerdict:
    turns: list[tuple[str, str]]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)
    answer_coverage: float | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def usable(self) -> bool:
        """Can be written as alternating user/assistant messages (possibly unverified)."""
        return bool(self.turns) and not any(kind == STRUCTURE for kind, _ in self.failures)

    def reasons(self) -> list[str]:
        return [message for _, message in self.failures]


class ChatValidator:
    def __init__(self, settings: SynthesizeSettings):
        self.settings = settings
        self.leaks = [re.compile(p) for p in settings.leak_patterns]

    def validate(self, reply: str, item: MCQ, truncated: bool = False) -> ChatVerdict:
        turns = parse_turns(reply)
        verdict = ChatVerdict(turns)
        fail = verdict.failures.append
        if truncated:
            fail((STRUCTURE, "the reply was cut off (max_tokens reached)"))
        if not turns:
            fail((STRUCTURE, "no turns: expected lines starting 'Patient:' or 'Doctor:'"))
            return verdict
        if turns[0][0] != "patient":
            fail((STRUCTURE, "the first turn is the doctor's; the patient speaks first"))
        for i in range(1, len(turns)):
            if turns[i][0] == turns[i - 1][0]:
                fail((STRUCTURE, f"turns {i} and {i + 1} are both the {turns[i][0]}'s; roles must alternate"))
        if turns[-1][0] != "doctor":
            fail((STRUCTURE, "the last turn is the patient's; the doctor speaks last"))
        empty = [str(i + 1) for i, (_, text) in enumerate(turns) if not text]
        if empty:
            fail((STRUCTURE, f"empty turns: {', '.join(empty)}"))
        if len(turns) < self.settings.min_turns:
            fail(("length", f"{len(turns)} turns, at least {self.settings.min_turns} needed"))
        for i, (role, text) in enumerate(turns):
            for pattern in self.leaks:
                match = pattern.search(text)
                if match:
                    fail(("leak", f"turn {i + 1} ({role}) gives the exam away: {match.group()!r}"))
                    break
        doctor_turns = [text for role, text in turns if role == "doctor"]
        if doctor_turns:
            self._check_answer(doctor_turns[-1], item, verdict)
        return verdict

    def _check_answer(self, final: str, item: MCQ, verdict: ChatVerdict) -> None:
        found, total = coverage(item.answer, final)
        if total == 0:
            verdict.failures.append(("answer", f"the correct answer {item.answer!r} has no content words to check"))
            return
        share = found / total
        verdict.answer_coverage = round(share, 3)
        if share < self.settings.answer_coverage:
            verdict.failures.append(
                (
                    "answer",
                    f"the last doctor turn does not state the correct answer {item.answer!r} ({found} of {total} key words)",
                )
            )
            return
        for index, option in enumerate(item.options):
            if index == item.answer_index:
                continue
            other_found, other_total = coverage(option, final)
            if other_total and other_found / other_total >= self.settings.answer_coverage and other_found > found:
                verdict.failures.append(("answer", f"the last doctor turn points to another answer, {option!r}"))
                return

    def unsuitable(self, item: MCQ) -> str | None:
        for pattern in self.settings.unsuitable_questions:
            if re.search(pattern, item.question):
                return f"the question cannot become a conversation (matches {pattern!r})"
        for pattern in self.settings.unsuitable_answers:
            if re.search(pattern, item.answer):
                return f"the correct answer {item.answer!r} cannot be reached in a conversation (matches {pattern!r})"
        return None


@dataclass
class SynthesisResult:
    item: MCQ
    where: str
    status: str  # machine | unverified | rejected | error
    verdict: ChatVerdict | None = None
    attempts: list[list[str]] = field(default_factory=list)
    temperature: float | None = None
    seed: int | None = None
    reason: str = ""
    turns: list[tuple[str, str]] = field(default_factory=list)  # what is written
    shaped: str = ""  # how an unverified reply was given the chat shape, if it had to be

    def messages(self) -> list[dict[str, str]]:
        return [{"role": ROLE[role], "content": text} for role, text in self.turns]


def shape_unverified(turns: list[tuple[str, str]], question: str, reply: str) -> tuple[list[tuple[str, str]], str]:
    """Alternating patient/doctor turns from a reply that failed the structure checks, for --keep-unverified
    only: consecutive turns of one role are joined, a chat opening with the doctor gets the question as
    the patient's turn, a trailing patient turn is dropped; a reply with no turns at all becomes the
    doctor's answer to the question. Returns ([], "") when there is nothing to keep, and says what it did."""
    merged: list[tuple[str, str]] = []
    for role, text in turns:
        if not text:
            continue
        if merged and merged[-1][0] == role:
            merged[-1] = (role, merged[-1][1] + "\n" + text)
        else:
            merged.append((role, text))
    notes = []
    if merged and merged[0][0] == "doctor":
        merged.insert(0, ("patient", question))
        notes.append("the question was added as the patient's first turn")
    if merged and merged[-1][0] == "patient":
        merged.pop()
        notes.append("a trailing patient turn was dropped")
    if len(merged) >= 2:
        if len(merged) != len([t for t in turns if t[1]]):
            notes.insert(0, "consecutive turns of one role were joined")
        return merged, "; ".join(notes)
    if reply.strip():
        return [("patient", question), ("doctor", reply.strip())], "the reply had no usable turns: kept as the doctor's answer to the question"  # fmt: skip
    return [], ""


@dataclass
class Synthesizer:
    llm: LLMClient
    settings: Settings

    def __post_init__(self):
        self.prompt = load_prompt(self.settings.synthesize.prompt)
        self.validator = ChatValidator(self.settings.synthesize)

    async def synthesize(self, item: MCQ, where: str, keep_unverified: bool = False) -> SynthesisResult:
        s = self.settings.synthesize
        reason = self.validator.unsuitable(item)
        if reason:
            return SynthesisResult(item, where, "rejected", reason=reason)
        messages = self.prompt.messages(
            question=item.question,
            context=item.context,
            options=item.options,
            answer=item.answer,
            explanation=item.explanation,
            min_turns=s.min_turns,
        )
        result = SynthesisResult(item, where, "rejected")
        for attempt in range(s.max_attempts):
            temperature = round(min(s.temperature + attempt * s.temperature_step, s.max_temperature), 4)
            seed = s.seed + attempt
            reply = await self.llm.chat(messages, temperature=temperature, max_tokens=s.max_tokens, seed=seed)
            verdict = self.validator.validate(reply.content, item, truncated=reply.finish_reason == "length")
            result.verdict, result.temperature, result.seed = verdict, temperature, seed
            result.attempts.append(verdict.reasons())
            if verdict.ok:
                result.status, result.turns = "machine", verdict.turns
                return result
        if keep_unverified:
            if verdict.usable:
                result.status, result.turns = "unverified", verdict.turns
                return result
            result.turns, result.shaped = shape_unverified(verdict.turns, item.question, reply.content)
            if result.turns:
                result.status = "unverified"
                return result
        result.reason = f"invalid after {s.max_attempts} attempts; last: " + "; ".join(verdict.reasons())
        return result


@dataclass
class SynthesizeRun:
    input: Path
    format: str
    out: Path
    cache: Path
    limit: int | None = None
    keep_unverified: bool = False
    progress: bool = True


def _output_row(result: SynthesisResult, model: str) -> dict:
    provenance = {
        "stage": "synthesize",
        "source_id": result.item.id,
        "source": result.where,
        "model": model,
        "status": result.status,
        "attempts": len(result.attempts),
        "temperature": result.temperature,
        "seed": result.seed,
        "answer": result.item.answer,
        "answer_coverage": result.verdict.answer_coverage,
    }
    if result.status == "unverified":
        provenance["reasons"] = result.verdict.reasons()
        if result.shaped:
            provenance["shaped"] = result.shaped
    return {"id": f"{result.item.id}-chat", "messages": result.messages(), "language": "en", "provenance": provenance}


async def run_synthesis(run: SynthesizeRun, settings: Settings, endpoint: Endpoint) -> dict:
    run.out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run.out)  # what a killed run was writing; its finished calls are in the cache
    entries = read_items(run.input, run.format)
    counts = {"machine": 0, "unverified": 0, "rejected": 0, "error": 0, "input_rejects": 0}
    attempts_histogram: dict[int, int] = {}

    def limited():
        for count, entry in enumerate(entries):
            if run.limit is not None and count >= run.limit:
                return
            yield entry

    with Cache(run.cache) as cache:
        async with LLMClient(endpoint, cache) as llm:
            synthesizer = Synthesizer(llm, settings)

            async def work(entry: tuple[str, Item | Reject]):
                where, item = entry
                if isinstance(item, Reject):
                    return item
                if not isinstance(item, MCQ):
                    return Reject(
                        where,
                        "chat synthesis takes MCQ items (mcq_json, medqa, medmcqa, pubmedqa labelled, mmlu_csv)",
                        item.id,
                    )
                if item.language != "en":
                    return Reject(
                        where,
                        f"the item is in {item.language!r}; synthesis takes English MCQ items (translate the chats afterwards)",
                        item.id,
                    )
                try:
                    return await synthesizer.synthesize(item, where, run.keep_unverified)
                except EndpointFatal:
                    raise
                except LLMError as err:
                    return SynthesisResult(item, where, "error", reason=str(err))

            total = count_rows(run.input)
            if total is not None and run.limit is not None:
                total = min(total, run.limit)
            bar = progress_bar(total, "synthesize", run.progress)
            window = max(4 * endpoint.client.concurrency, 16)
            with (
                bar,
                atomic_writer(run.out / "chats.jsonl") as chats,
                atomic_writer(run.out / "chats_unverified.jsonl") as unverified,
                atomic_writer(run.out / "rejects.jsonl") as rejects,
            ):
                async for _, result in ordered_map(
                    limited(), work, window=window, progress=bar, postfix=lambda: llm.usage.line(endpoint)
                ):
                    if isinstance(result, Reject):
                        counts["input_rejects"] += 1
                        rejects.write(json_line(result.to_row()))
                        continue
                    counts[result.status] += 1
                    if result.attempts:
                        attempts_histogram[len(result.attempts)] = attempts_histogram.get(len(result.attempts), 0) + 1
                    if result.status in ("machine", "unverified"):
                        target = chats if result.status == "machine" else unverified
                        target.write(json_line(_output_row(result, endpoint.model)))
                    else:
                        row = {"where": result.where, "id": result.item.id, "reason": result.reason}
                        if result.attempts:
                            row["attempts"] = result.attempts
                        rejects.write(json_line(row))
            usage = llm.usage.summary(endpoint)
    outputs = {"chats.jsonl": {"rows": counts["machine"], "sha256": sha256_file(run.out / "chats.jsonl")}}
    if run.keep_unverified:
        path = run.out / "chats_unverified.jsonl"
        outputs[path.name] = {"rows": counts["unverified"], "sha256": sha256_file(path)}
    else:
        (run.out / "chats_unverified.jsonl").unlink(missing_ok=True)  # empty: nothing was kept unverified
    manifest = {
        "stage": "synthesize",
        "input": str(run.input),
        "input_sha256": sha256_file(run.input),
        "format": run.format,
        "limit": run.limit,
        "keep_unverified": run.keep_unverified,
        "endpoint": {"base_url": endpoint.base_url, "model": endpoint.model},
        "prompt_sha256": synthesizer.prompt.sha256,
        "outputs": outputs,
        "items": counts,
        "attempts": {str(k): v for k, v in sorted(attempts_histogram.items())},
        "usage": usage,
    }
    write_json(run.out / "manifest.json", manifest)
    return manifest
