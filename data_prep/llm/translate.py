"""English -> Arabic translation of MCQ, open QA and chat items, with automatic QA and rounds of repair.

Per item: protect what must not change (protect.py), send all its fields as <seg> blocks in one
call with the glossary terms it contains, check the reply (checks.py), back-translate the Arabic
to English and score it; a failing item is translated again with its failures named in the
prompt, up to `max_rounds` more times, and then goes to the human review queue (review.py).

A run folder holds:
  ledger.jsonl      every item: source, best machine translation, back-translation, scores, reasons
  rejects.jsonl     input rows that could not be used, with file:line and the reason
  run.json          what produced the ledger (input, format, endpoint, settings and prompt hashes)
  translated.jsonl  the output the data stage reads (review.build_outputs: ledger + reviews)
  reviews.jsonl     reviewers' decisions (review-import)
  review/queue.csv, review/queue.jsonl   the human review queue (review-export)
  manifest.json     counts by status, usage and cost, sha256 of every output
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from bimedix.files import sha256_file
from data_prep.llm import review
from data_prep.llm.cache import Cache
from data_prep.llm.checks import (
    Failure,
    format_segments,
    parse_segments,
    qa_failures,
    qa_scores,
    segment_failures,
    structural_failures,
)
from data_prep.llm.client import EndpointFatal, LLMClient, LLMError
from data_prep.llm.config import Endpoint, Settings
from data_prep.llm.files import atomic_writer, json_line, remove_stale_temporaries, sha256_text, write_json
from data_prep.llm.glossary import GLOSSARY_FILE, Glossary, default_glossary
from data_prep.llm.prompts import load_prompt
from data_prep.llm.protect import PROTECT_FILE, Protected, Protector, UnprotectableText, default_protector, restore
from data_prep.llm.records import Item, Reject, count_rows, read_items
from data_prep.llm.runner import ordered_map, progress_bar


@dataclass
class Outcome:
    id: str
    kind: str
    where: str
    item: dict
    status: str  # machine | review | error | rejected
    source: dict[str, str] = field(default_factory=dict)
    translation: dict[str, str] = field(default_factory=dict)
    back_translation: dict[str, str] = field(default_factory=dict)
    scores: dict | None = None
    reasons: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # the reasons with their check and segment (Failure.to_row)
    rounds: int = 0
    history: list[dict] = field(default_factory=list)

    def to_row(self) -> dict:
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # shallow: asdict deep-copies
        row["source_sha"] = {k: sha256_text(v)[:16] for k, v in self.source.items()}
        return row


@dataclass
class Translator:
    """Translates one item at a time through an LLMClient; stateless between items."""

    llm: LLMClient
    settings: Settings
    glossary: Glossary = field(default_factory=default_glossary)
    protector: Protector = field(default_factory=default_protector)

    def __post_init__(self):
        t = self.settings.translate
        self.prompt = load_prompt(t.prompt)
        self.back_prompt = load_prompt(t.back_prompt)

    def max_tokens(self, segments: dict[str, str]) -> int:
        """A reply budget in proportion to the text (bounds runaway generation and the tokens limiter's hold)."""
        t = self.settings.translate
        wanted = sum(len(v) for v in segments.values()) * t.max_tokens_per_char + t.max_tokens_per_segment * len(
            segments
        )
        return min(t.max_tokens, math.ceil(wanted))

    async def _ask(self, prompt, segments: dict[str, str], temperature: float, **variables) -> tuple[dict, list, str]:
        """One call for `segments`: (segments found in the reply, problems, the raw reply).

        A reply for a single segment may come without the <seg> tags: it is then that segment."""
        messages = prompt.messages(segments=format_segments(segments), **variables)
        reply = await self.llm.chat(messages, temperature=temperature, max_tokens=self.max_tokens(segments))
        found, problems = parse_segments(reply.content)
        if not found and len(segments) == 1 and reply.content.strip():
            found = {next(iter(segments)): reply.content.strip()}
        if reply.finish_reason == "length":
            problems.insert(0, "the reply was cut off (max_tokens reached); answer with the blocks only")
        return found, problems, reply.content

    async def _ask_each(self, prompt, segments: dict[str, str], temperature: float, **variables) -> tuple[dict, list]:
        """One call per segment, for models that do not keep several <seg> blocks apart."""
        replies = await asyncio.gather(*(self._ask(prompt, {k: v}, temperature, **variables) for k, v in segments.items()))  # fmt: skip
        found: dict[str, str] = {}
        problems: list[str] = []
        for (key, _), (one, notes, _) in zip(segments.items(), replies, strict=True):
            if key in one:
                found[key] = one[key]
            problems += [f"{key}: {note}" for note in notes]
        return found, problems

    async def _evaluate(
        self, found, problems, protected, table, terms, source
    ) -> tuple[dict, dict, dict | None, list[Failure]]:
        """Checks, then (when they pass) back-translation and QA: (translation, back, scores, failures)."""
        qa = self.settings.translate.qa
        failures = segment_failures(list(protected), found, problems)
        failures += structural_failures(source, protected, found, table, self.glossary, qa)
        translation = {k: restore(v, table) for k, v in found.items() if k in protected}
        if failures:
            return translation, {}, None, failures
        arabic = {k: found[k] for k in protected}
        glossary = [(term.preferred, term.english) for term in terms]
        back_found, _, _ = await self._ask(self.back_prompt, arabic, 0.0, glossary=glossary)
        missing = {k: v for k, v in arabic.items() if k not in back_found}
        if missing:
            extra, _ = await self._ask_each(self.back_prompt, missing, 0.0, glossary=glossary)
            back_found |= extra
        back = {k: restore(v, table) for k, v in back_found.items() if k in protected}
        scored = qa_scores(source, translation, back)
        failures = qa_failures(scored, source, qa)
        lost = [k for k in protected if k not in back_found]
        if lost:
            failures.append(
                Failure("back_translation", f"the back-translation lost segments {', '.join(lost)}; translate again")
            )
        return translation, back, dataclasses.asdict(scored), failures

    async def translate(self, item: Item, where: str) -> Outcome:
        t = self.settings.translate
        outcome = Outcome(item.id, item.kind, where, item.to_row(), "review", source=item.segments())
        table = Protected()
        try:
            protected = {k: self.protector.protect(v, table) for k, v in outcome.source.items()}
        except UnprotectableText as err:
            outcome.status, outcome.reasons = "rejected", [str(err)]
            return outcome
        terms = []
        for text in protected.values():
            terms += [term for term in self.glossary.prompt_terms(text) if term not in terms]
        glossary = [(term.english, term.preferred) for term in terms]
        failures: list[Failure] = []
        previous = ""
        best: dict | None = None

        def keep(label, found, evaluated):
            nonlocal best
            translation, back, scores, reasons = evaluated
            outcome.history.append(
                {"round": label, "reasons": [str(r) for r in reasons], "chrf": scores and scores["chrf"]}
            )
            # the most complete, then the least failing, then the latest
            rank = (sum(k not in translation for k in protected), len(reasons))
            if best is None or rank <= best["rank"]:
                best = {"rank": rank, "found": found, "translation": translation, "back": back, "scores": scores, "reasons": reasons}  # fmt: skip  # fmt: skip

        for round_number in range(t.max_rounds + 1):
            temperature = t.temperature if round_number == 0 else t.retry_temperature
            found, problems, raw = await self._ask(
                self.prompt, protected, temperature, glossary=glossary, failures=failures, previous=previous
            )
            outcome.rounds += 1
            evaluated = await self._evaluate(found, problems, protected, table, terms, outcome.source)
            keep(round_number, found, evaluated)
            failures = evaluated[3]
            if not failures:
                break
            previous = format_segments(found) if found else raw
        missing = {k: v for k, v in protected.items() if k not in best["found"]}
        if best["reasons"] and missing:
            # The model did not keep the blocks apart: ask for each missing segment alone.
            found, problems = await self._ask_each(
                self.prompt, missing, t.temperature, glossary=glossary, failures=[], previous=""
            )
            outcome.rounds += 1
            merged = {k: v for k, v in best["found"].items() if k in protected} | found
            keep("per-segment", merged, await self._evaluate(merged, problems, protected, table, terms, outcome.source))
        outcome.translation, outcome.back_translation = best["translation"], best["back"]
        outcome.scores, outcome.reasons = best["scores"], [str(r) for r in best["reasons"]]
        outcome.failures = [r.to_row() for r in best["reasons"]]
        outcome.status = "machine" if not outcome.reasons else "review"
        return outcome


@dataclass
class TranslateRun:
    input: Path
    format: str
    out: Path
    cache: Path
    limit: int | None = None
    keep_unverified: bool = False
    progress: bool = True


def input_fingerprint(settings: Settings) -> dict:
    t = settings.translate
    return {
        "settings": dataclasses.asdict(t),
        "prompt_sha256": load_prompt(t.prompt).sha256,
        "back_prompt_sha256": load_prompt(t.back_prompt).sha256,
        "glossary_sha256": sha256_file(GLOSSARY_FILE),
        "protect_sha256": sha256_file(PROTECT_FILE),
    }


def _limited(iterable, limit):
    for count, value in enumerate(iterable):
        if limit is not None and count >= limit:
            return
        yield value


async def run_translation(run: TranslateRun, settings: Settings, endpoint: Endpoint) -> dict:
    """Translate `run.input` into `run.out`; returns the manifest. EndpointFatal stops the run."""
    run.out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run.out)  # what a killed run was writing; its finished calls are in the cache
    items = _limited(read_items(run.input, run.format), run.limit)
    counts = {"machine": 0, "review": 0, "error": 0, "rejected": 0}
    with Cache(run.cache) as cache:
        async with LLMClient(endpoint, cache) as llm:
            translator = Translator(llm, settings)

            async def work(entry: tuple[str, Item | Reject]) -> Outcome | Reject:
                where, item = entry
                if isinstance(item, Reject):
                    return item
                if item.language != "en":
                    return Reject(where, f"the item is in {item.language!r}; translation takes English input", item.id)
                try:
                    return await translator.translate(item, where)
                except EndpointFatal:
                    raise
                except LLMError as err:
                    return Outcome(
                        item.id, item.kind, where, item.to_row(), "error", source=item.segments(), reasons=[str(err)]
                    )

            total = count_rows(run.input)
            if total is not None and run.limit is not None:
                total = min(total, run.limit)
            bar = progress_bar(total, "translate", run.progress)
            window = max(4 * endpoint.client.concurrency, 16)
            with (
                bar,
                atomic_writer(run.out / "ledger.jsonl") as ledger,
                atomic_writer(run.out / "rejects.jsonl") as rejects,
            ):
                async for _, result in ordered_map(
                    items, work, window=window, progress=bar, postfix=lambda: llm.usage.line(endpoint)
                ):
                    if isinstance(result, Reject) or result.status == "rejected":
                        if not isinstance(result, Reject):
                            result = Reject(result.where, result.reasons[0], result.id)
                        rejects.write(json_line(result.to_row()))
                        counts["rejected"] += 1
                        continue
                    counts[result.status] += 1
                    ledger.write(json_line(result.to_row()))
            usage = llm.usage.summary(endpoint)
    run_info = {
        "stage": "translate",
        "input": str(run.input),
        "input_sha256": sha256_file(run.input),
        "format": run.format,
        "limit": run.limit,
        "keep_unverified": run.keep_unverified,
        "endpoint": {"base_url": endpoint.base_url, "model": endpoint.model},
        "translation": input_fingerprint(settings),
        "counts": counts,
        "usage": usage,
    }
    write_json(run.out / "run.json", run_info)
    manifest = review.build_outputs(run.out)
    review.export_queue(run.out)
    return manifest
