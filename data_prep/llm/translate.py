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

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.llm import review
from data_prep.llm.cache import Cache
from data_prep.llm.checks import (
    format_segments,
    parse_segments,
    qa_failures,
    qa_scores,
    segment_failures,
    structural_failures,
)
from data_prep.llm.client import EndpointFatal, LLMClient, LLMError
from data_prep.llm.config import Endpoint, Settings
from data_prep.llm.files import atomic_writer, json_line, remove_stale_temporaries, sha256_file, sha256_text, write_json
from data_prep.llm.glossary import GLOSSARY_FILE, Glossary, default_glossary
from data_prep.llm.prompts import load_prompt
from data_prep.llm.protect import PROTECT_FILE, Protected, Protector, UnprotectableText, default_protector, restore
from data_prep.llm.records import Item, Reject, read_items
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
            terms += [term for term in self.glossary.find(text) if term not in terms]
        failures: list[str] = []
        previous = ""
        best: tuple | None = None  # (failure count, round, translation, back, scores, failures)
        for round_number in range(t.max_rounds + 1):
            messages = self.prompt.messages(
                segments=format_segments(protected),
                glossary=[(term.english, term.preferred) for term in terms],
                failures=failures,
                previous=previous,
            )
            temperature = t.temperature if round_number == 0 else t.retry_temperature
            reply = await self.llm.chat(messages, temperature=temperature, max_tokens=t.max_tokens)
            outcome.rounds = round_number + 1
            found, problems = parse_segments(reply.content)
            failures = segment_failures(list(protected), found, problems)
            if reply.finish_reason == "length":
                failures.insert(0, "the reply was cut off (max_tokens reached); answer with the blocks only")
            failures += structural_failures(outcome.source, protected, found, table, self.glossary, t.qa)
            translation = {k: restore(v, table) for k, v in found.items() if k in protected}
            back: dict[str, str] = {}
            scores = None
            if not failures:
                back_messages = self.back_prompt.messages(
                    segments=format_segments({k: found[k] for k in protected}),
                    glossary=[(term.preferred, term.english) for term in terms],
                )
                back_reply = await self.llm.chat(back_messages, temperature=0.0, max_tokens=t.max_tokens)
                back_found, _ = parse_segments(back_reply.content)
                back = {k: restore(v, table) for k, v in back_found.items() if k in protected}
                scored = qa_scores(outcome.source, translation, back)
                scores = dataclasses.asdict(scored)
                failures = qa_failures(scored, outcome.source, t.qa)
                missing_back = [k for k in protected if k not in back_found]
                if missing_back:
                    failures.append(f"the back-translation lost segments {', '.join(missing_back)}; translate again")
            outcome.history.append({"round": round_number, "reasons": failures, "chrf": scores and scores["chrf"]})
            rank = (len(failures), -round_number)
            if best is None or rank < best[0]:
                best = (rank, translation, back, scores, list(failures))
            if not failures:
                break
            previous = format_segments(found) if found else reply.content
        _, outcome.translation, outcome.back_translation, outcome.scores, outcome.reasons = best
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

            bar = progress_bar(None, "translate", run.progress)
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
