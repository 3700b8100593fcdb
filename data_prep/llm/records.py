"""The items this stage works on (MCQ, open QA, chat), read from and written to the data stage's formats.

Every input is read by `bimedix.formats`, the reader data_prep and eval_tasks use (so a file gives
the same items, gold options and rejects in all three):
- the data stage's exchange formats, field for field, keeping what the training converters drop
  (`id`, `explanation`, `source`, `language`, the `provenance` of an earlier run), text as written:
  - `mcq_json`: the normalised MCQ shape, a JSON array or JSON lines of
    {question, options "(A) ..\\n(B) ..", answer "(A)", context?, source?, id?, explanation?, language?}
    (options may also be a list or an {"A": ..} mapping; answer a letter with or without brackets);
  - `qa_jsonl`: JSON lines of {question, answer, id?, language?};
  - `chat_jsonl`: JSON lines of {messages: [{role, content}, ...], id?, language?};
- a source in its ORIGINAL format (`medqa`, `medmcqa` with its `cop` base probed, `pubmedqa`,
  `mmlu_csv`, `medarabiq_csv`), its text normalised as data_prep writes training text.
Outputs are written in the three exchange formats, so the data stage reads them as ordinary
sources; every output row also carries `id`, `language` and `provenance` (a mapping), which
readers of these formats keep or ignore.

Reading never stops at a bad row: it yields a Reject naming the file, the line and the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bimedix import arabic, formats
from data_prep.llm.cache import canonical_json

LETTERS = "ABCDE"  # bimedix.mcq: 2 to 5 options


@dataclass
class MCQ:
    id: str
    question: str
    options: list[str]
    answer_index: int
    context: str = ""
    explanation: str = ""
    language: str = "en"
    source: str = ""

    kind = "mcq"

    @property
    def answer(self) -> str:
        return self.options[self.answer_index]

    def segments(self) -> dict[str, str]:
        out = {"question": self.question}
        if self.context.strip():
            out["context"] = self.context
        for letter, option in zip(LETTERS, self.options, strict=False):
            out[f"option:{letter}"] = option
        if self.explanation.strip():
            out["explanation"] = self.explanation
        return out

    def with_segments(self, segments: dict[str, str], language: str) -> MCQ:
        return MCQ(
            id=self.id,
            question=segments["question"],
            options=[segments[f"option:{LETTERS[i]}"] for i in range(len(self.options))],
            answer_index=self.answer_index,
            context=segments.get("context", ""),
            explanation=segments.get("explanation", ""),
            language=language,
            source=self.source,
        )

    def to_row(self) -> dict:
        """The normalised MCQ shape (mcq_json): letters stay Latin, as in the Arabic benchmarks."""
        row = {
            "id": self.id,
            "question": self.question,
            "options": "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(self.options)),
            "answer": f"({LETTERS[self.answer_index]})",
            "context": self.context,
            "language": self.language,
        }
        if self.source:
            row["source"] = self.source
        if self.explanation:
            row["explanation"] = self.explanation
        return row


@dataclass
class QA:
    id: str
    question: str
    answer: str
    language: str = "en"

    kind = "qa"

    def segments(self) -> dict[str, str]:
        return {"question": self.question, "answer": self.answer}

    def with_segments(self, segments: dict[str, str], language: str) -> QA:
        return QA(self.id, segments["question"], segments["answer"], language)

    def to_row(self) -> dict:
        return {"id": self.id, "question": self.question, "answer": self.answer, "language": self.language}


@dataclass
class Chat:
    id: str
    messages: list[dict[str, str]] = field(default_factory=list)
    language: str = "en"

    kind = "chat"

    def segments(self) -> dict[str, str]:
        return {f"turn:{i}:{m['role']}": m["content"] for i, m in enumerate(self.messages)}

    def with_segments(self, segments: dict[str, str], language: str) -> Chat:
        messages = [
            {"role": m["role"], "content": segments[f"turn:{i}:{m['role']}"]} for i, m in enumerate(self.messages)
        ]
        return Chat(self.id, messages, language)

    def to_row(self) -> dict:
        return {"id": self.id, "messages": self.messages, "language": self.language}


Item = MCQ | QA | Chat


@dataclass(frozen=True)
class Reject:
    where: str  # "file:line"
    reason: str
    id: str = ""

    def to_row(self) -> dict:
        return {"where": self.where, "id": self.id, "reason": self.reason}


class RecordError(ValueError):
    pass


def _row_id(row: dict) -> str:
    value = row.get("id")
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return "sha-" + hashlib.sha256(canonical_json(row).encode("utf-8")).hexdigest()[:16]


def _parsed(row: dict, fmt: str) -> formats.Item:
    if not isinstance(row, dict):
        raise RecordError(f"expected a JSON object, got {type(row).__name__}")
    result = formats.FORMATS[fmt].convert(row, formats.Context())
    if isinstance(result, formats.Reject):
        raise RecordError(f"{result.reason} ({result.code})")
    return result


def _language(item: formats.Item) -> str:
    """The row's own `language` field when it has one, else the script's."""
    return item.meta.get("language") or item.language


def _exchange_item(item: formats.Item, row: dict) -> Item:
    """The stage's item of an exchange-format row, text as written."""
    if item.kind == "chat":
        return Chat(_row_id(row), [dict(m) for m in item.messages], _language(item))
    if item.kind == "qa":
        return QA(_row_id(row), item.question, item.answer_text, _language(item))
    return MCQ(
        _row_id(row), item.question, [o.strip() for o in item.options], item.answer, item.context,
        item.explanation, _language(item), item.meta.get("origin") or "",
    )  # fmt: skip


def parse_mcq(row: dict) -> MCQ:
    return _exchange_item(_parsed(row, "mcq_json"), row)


def parse_qa(row: dict) -> QA:
    return _exchange_item(_parsed(row, "qa_jsonl"), row)


def parse_chat(row: dict) -> Chat:
    return _exchange_item(_parsed(row, "chat_jsonl"), row)


PARSERS = {"mcq_json": parse_mcq, "qa_jsonl": parse_qa, "chat_jsonl": parse_chat}
# Original source formats, read through bimedix.formats with their text normalised.
ORIGINAL_FORMATS = ("medqa", "medmcqa", "pubmedqa", "mmlu_csv", "medarabiq_csv")
FORMATS = (*PARSERS, *ORIGINAL_FORMATS)
# An item's row (Item.to_row, as the ledger stores it) is read back by its kind, whatever the input format.
PARSE_KIND = {"mcq": parse_mcq, "qa": parse_qa, "chat": parse_chat}


def count_rows(path: str | Path) -> int | None:
    """Rows in a JSON lines or JSON array file (for the progress bar's ETA); None if it cannot tell."""
    try:
        source = formats.SourceFile(str(path), path=Path(path))
        return sum(1 for _ in formats.iter_rows("json", source))
    except (formats.FormatError, OSError):
        return None


def _original_item(item: formats.Item, fmt: str) -> Item:
    """An MCQ or QA item from an original-format item, its text normalised as training text is."""
    n = arabic.normalise
    question, context = n(item.question), n(item.context) if item.context else ""
    options = [n(o) for o in item.options]
    answer = n(item.answer_text) if item.answer_text else ""
    raw = "\n".join([context, question, *options, answer])
    item_id = f"{fmt}-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]
    if item.kind == "mcq":
        explanation = n(item.explanation) if item.explanation else ""
        return MCQ(item_id, question, options, item.answer, context, explanation, item.language, fmt)
    # Open QA with a context (PubMedQA's unlabelled set): the context goes first, as in data_prep's QA prompt.
    return QA(item_id, "\n\n".join(t for t in (context, question) if t), answer, item.language)


def read_items(path: str | Path, fmt: str) -> Iterator[tuple[str, Item | Reject]]:
    """("file:line", item) for each row of `path` in format `fmt`; a Reject for each unusable row
    (and for a later copy of a question, or a repeated id). A whole-file problem (missing file, a
    document that does not parse, an undecidable MedMCQA `cop` base) is one ValueError naming the file."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    label = str(path)
    rows = formats.read_rows(path, fmt, label)
    subject = formats.mmlu_subject(path) if fmt == "mmlu_csv" else None
    declared = {"cop_base_hint": "convert it with python -m data_prep convert --cop-base 0|1 --out FILE first"}
    read = formats.convert_rows(rows, fmt, formats.Context(subject=subject), label=label, declared=declared)
    found = {item.line: item for item in read.items} | {line: reject for line, reject in read.rejects}
    seen: dict[str, str] = {}
    for line, row in rows:
        result, where = found[line], f"{path}:{line}"
        if isinstance(result, formats.Reject):
            row_id = str(row.get("id", "")) if isinstance(row, dict) and fmt in PARSERS else ""
            yield where, Reject(where, f"{result.reason} ({result.code})", row_id)
            continue
        item = _original_item(result, fmt) if fmt in ORIGINAL_FORMATS else _exchange_item(result, row)
        if item.id in seen:
            yield where, Reject(where, f"duplicate id {item.id!r} (first at {seen[item.id]})", item.id)
            continue
        seen[item.id] = where
        yield where, item
