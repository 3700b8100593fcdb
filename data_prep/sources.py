"""Source formats as training records: the format layer's items, turned into chat records.

Parsing is not done here: every layout is read by `bimedix.formats` (the same reader eval_tasks
and the LLM stages use), which gives an `Item` (question, options, gold option, context,
language) or a `Reject`. This module turns an item into the `Record` the build writes: every
text normalised (`bimedix.arabic.normalise`), the question phrased by data_prep/prompts/*.yaml.

    from data_prep.sources import SOURCES, SourceContext
    record = SOURCES["medqa"].convert(row, SourceContext(source="medqa_train"))  # Record | Reject
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bimedix import arabic
from bimedix import formats as layer
from bimedix.audit import item_keys
from bimedix.formats import FormatError, Item, Reject
from bimedix.mcq import OPTION_LETTERS
from data_prep.prompts import Prompts, default_prompts
from data_prep.records import DataPrepError, Record


@dataclass(frozen=True)
class SourceContext:
    source: str = "source"
    language: str | None = None  # declared in the mix; a record whose script says otherwise is rejected
    subject: str | None = None  # e.g. the MMLU subject, from the mix or the file name
    seed: int = 0  # picks the phrasing of each question
    explanations: bool = True  # keep MedMCQA `exp` / PubMedQA LONG_ANSWER in the answer
    min_arabic_share: float = 0.3  # share of Arabic letters from which a text counts as Arabic
    params: Mapping[str, Any] = field(default_factory=dict)  # found by the format's probe (cop_base)
    prompts: Prompts = field(default_factory=default_prompts)

    def item_context(self) -> layer.Context:
        return layer.Context(self.language, self.subject, self.params, self.min_arabic_share)


def _n(text: str) -> str:
    return arabic.normalise(text) if text else ""


def mcqa_record(ctx: SourceContext, item: Item) -> Record:
    """The MCQA record of a multiple-choice item (MedQA, MedMCQA, PubMedQA labelled, MMLU, MCQ, MedArabiQ)."""
    question, context = _n(item.question), _n(item.context)
    options = [_n(o) for o in item.options]
    source_explanation = _n(item.explanation) or None
    explanation = source_explanation if ctx.explanations else None
    user, assistant, phrasing = ctx.prompts.render_mcqa(
        item.language, question, options, item.answer, context=context or None, explanation=explanation, seed=ctx.seed
    )
    meta = {key: value for key, value in item.meta.items() if key != "language"}
    if item.id is not None:
        meta["source_id"] = item.id
    return Record(
        task="mcqa",
        language=item.language,
        messages=[{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        probe_text="\n".join([question, *options]),
        extra_text=context,
        metadata={
            "options": options,
            "label": item.answer,
            "answer_letter": OPTION_LETTERS[item.language][item.answer],
            "phrasing": phrasing,
            "has_explanation": explanation is not None,
            "subject": item.subject,
            **meta,
        },
        parts={"question": question, "context": context, "explanation": source_explanation or ""},
    )


def qa_record(ctx: SourceContext, item: Item) -> Record:
    question, context, answer = _n(item.question), _n(item.context), _n(item.answer_text)
    user = ctx.prompts.render_qa(item.language, question, context or None)
    metadata = {"subject": item.subject}
    if item.id is not None:
        metadata["source_id"] = item.id
    return Record(
        task="qa",
        language=item.language,
        messages=[{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        probe_text=question,
        extra_text="\n".join([context, answer]),
        metadata=metadata,
        parts={"question": question, "answer": answer, "context": context},
    )


def chat_record(ctx: SourceContext, item: Item) -> Record:
    messages = [{"role": m["role"], "content": _n(m["content"])} for m in item.messages]
    users = [m["content"] for m in messages if m["role"] == "user"]
    return Record(
        task="chat",
        language=item.language,
        messages=messages,
        probe_text="\n".join(users),
        extra_text="\n".join(m["content"] for m in messages if m["role"] != "user"),
        metadata={"subject": item.subject, "turns": len(users)},
    )


RECORDS = {"mcq": mcqa_record, "qa": qa_record, "chat": chat_record}


def record_of(item: Item, ctx: SourceContext) -> Record:
    record = RECORDS[item.kind](ctx, item)
    record.audit_keys = item_keys(item)
    return record


ProbeFn = Callable[[Iterable[Any], Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Format:
    """A source format of the mix: the format layer's reader and converter, then the record."""

    name: str
    layout: layer.Format

    @property
    def reader(self) -> str:
        return self.layout.reader

    @property
    def description(self) -> str:
        return self.layout.description

    @property
    def params(self) -> tuple[str, ...]:
        return self.layout.params

    def probe(self, rows: Iterable[Any], declared: Mapping[str, Any], label: str) -> dict[str, Any]:
        try:
            return layer.probe(self.layout, rows, declared, label)
        except FormatError as err:
            raise DataPrepError(str(err)) from None

    def item(self, row: Any, ctx: SourceContext, line: int = 0) -> Item | Reject:
        return self.layout.convert(row, ctx.item_context(), line)

    def convert(self, row: Any, ctx: SourceContext, line: int = 0) -> Record | Reject:
        result = self.item(row, ctx, line)
        return result if isinstance(result, Reject) else record_of(result, ctx)


SOURCES: dict[str, Format] = {name: Format(name, fmt) for name, fmt in layer.FORMATS.items() if fmt.local}


def get_format(name: str) -> Format:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataPrepError(f"unknown format {name!r}; known formats: {', '.join(SOURCES)}") from None
