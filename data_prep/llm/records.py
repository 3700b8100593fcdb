"""The items this stage works on (MCQ, open QA, chat), read from and written to the data stage's formats.

Two kinds of input:
- the data stage's exchange formats, read here field for field because they carry what the
  training converters drop (`id`, `explanation`, `source`, and the `provenance` of an earlier run):
  - `mcq_json`: the normalised MCQ shape, a JSON array or JSON lines of
    {question, options "(A) ..\\n(B) ..", answer "(A)", context?, source?, id?, explanation?, language?}
    (options may also be a list or an {"A": ..} mapping; answer a letter with or without brackets);
  - `qa_jsonl`: JSON lines of {question, answer, id?, language?};
  - `chat_jsonl`: JSON lines of {messages: [{role, content}, ...], id?, language?};
- a source in its ORIGINAL format (`medqa`, `medmcqa`, `pubmedqa`, `mmlu_csv`), read with
  data_prep's own reader, probe and converter (so its normalisation and rejects), then taken
  apart again from the record's structured parts.
Outputs are written in the three exchange formats, so the data stage reads them as ordinary
sources; every output row also carries `id`, `language` and `provenance` (a mapping), which
readers of these formats keep or ignore.

Reading never stops at a bad row: it yields a Reject naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.llm.cache import canonical_json
from data_prep.llm.text import is_mostly_arabic

LETTERS = "ABCDEFGHIJ"
_OPTION_LINE = re.compile(r"^\s*\(([A-J])\)\s?(.*)$")
_ANSWER = re.compile(r"^\s*\(?([A-J])\)?[.:]?\s*$")
ROLES = {"system", "user", "assistant"}


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


def _text(row: dict, key: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None or value == "":
        if required:
            raise RecordError(f"field {key!r} is missing or empty")
        return ""
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _language(row: dict, text: str) -> str:
    language = row.get("language")
    if language is None:
        return "ar" if is_mostly_arabic(text) else "en"
    if language not in ("en", "ar"):
        raise RecordError(f"field 'language' must be 'en' or 'ar', got {language!r}")
    return language


def _row_id(row: dict) -> str:
    value = row.get("id")
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return "sha-" + hashlib.sha256(canonical_json(row).encode("utf-8")).hexdigest()[:16]


def _options(value) -> list[str]:
    if isinstance(value, str):
        options: list[str] = []
        for line in value.splitlines():
            match = _OPTION_LINE.match(line)
            if match:
                if match.group(1) != LETTERS[len(options)]:
                    raise RecordError(f"field 'options': expected ({LETTERS[len(options)]}), found ({match.group(1)})")
                options.append(match.group(2).strip())
            elif options and line.strip():
                options[-1] += "\n" + line.strip()
            elif line.strip():
                raise RecordError(f"field 'options': text before the first '(A)': {line.strip()[:40]!r}")
    elif isinstance(value, list):
        options = value
    elif isinstance(value, dict):
        keys = sorted(value)
        if keys != list(LETTERS[: len(keys)]):
            raise RecordError(f"field 'options': keys must be A, B, C... in order, got {keys}")
        options = [value[k] for k in keys]
    else:
        raise RecordError("field 'options' must be a string '(A) ..', a list or a mapping")
    if not all(isinstance(o, str) and o.strip() for o in options):
        raise RecordError("field 'options': every option must be a non-empty string")
    if not 2 <= len(options) <= len(LETTERS):
        raise RecordError(f"field 'options': {len(options)} options, expected 2 to {len(LETTERS)}")
    return [o.strip() for o in options]


def parse_mcq(row: dict) -> MCQ:
    question = _text(row, "question")
    options = _options(row.get("options"))
    answer = row.get("answer", row.get("answer_idx"))
    if isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    else:
        match = _ANSWER.match(answer) if isinstance(answer, str) else None
        if not match:
            raise RecordError(f"field 'answer' must be a letter such as '(A)', got {answer!r}")
        index = LETTERS.index(match.group(1))
    if not 0 <= index < len(options):
        raise RecordError(f"field 'answer' points at option {index + 1} of {len(options)}")
    context = _text(row, "context", required=False)
    explanation = _text(row, "explanation", required=False) or _text(row, "exp", required=False)
    source = row.get("source") if isinstance(row.get("source"), str) else ""
    return MCQ(_row_id(row), question, options, index, context, explanation, _language(row, question), source)


def parse_qa(row: dict) -> QA:
    question, answer = _text(row, "question"), _text(row, "answer")
    return QA(_row_id(row), question, answer, _language(row, question + answer))


def parse_chat(row: dict) -> Chat:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RecordError("field 'messages' must be a non-empty list")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RecordError(f"field 'messages[{i}]' needs a role in {sorted(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise RecordError(f"field 'messages[{i}].content' is missing or empty")
        clean.append({"role": message["role"], "content": content})
    return Chat(_row_id(row), clean, _language(row, " ".join(m["content"] for m in clean)))


PARSERS = {"mcq_json": parse_mcq, "qa_jsonl": parse_qa, "chat_jsonl": parse_chat}
# Original source formats, read through data_prep (data_prep/sources.py).
ORIGINAL_FORMATS = ("medqa", "medmcqa", "pubmedqa", "mmlu_csv")
FORMATS = (*PARSERS, *ORIGINAL_FORMATS)
# An item's row (Item.to_row, as the ledger stores it) is read back by its kind, whatever the input format.
PARSE_KIND = {"mcq": parse_mcq, "qa": parse_qa, "chat": parse_chat}


def _raw_rows(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON or a RecordError) for a JSON array file or a JSON lines file."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            yield err.lineno, RecordError(f"not valid JSON: {err.msg}")
            return
        # Line numbers of a JSON array: where each element starts, found by re-scanning.
        decoder = json.JSONDecoder()
        position = text.index("[") + 1
        for row in rows:
            while text[position] in " \t\r\n,":
                position += 1
            _, end = decoder.raw_decode(text, position)
            yield text.count("\n", 0, position) + 1, row
            position = end
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            yield number, RecordError(f"not valid JSON: {err.msg} (column {err.colno})")


def count_rows(path: str | Path) -> int | None:
    """Rows in a JSON lines or JSON array file (for the progress bar's ETA); None if it cannot tell."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        try:
            rows = json.loads(path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return len(rows) if isinstance(rows, list) else None
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _item_from_record(record, fmt: str) -> Item:
    """An MCQ or QA item from a data_prep Record (its structured parts and metadata)."""
    parts, meta = record.parts, record.metadata
    raw = "\n".join([parts.get("context", ""), parts["question"], *meta.get("options", []), parts.get("answer", "")])
    item_id = f"{fmt}-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]
    if record.task == "mcqa":
        return MCQ(
            item_id,
            parts["question"],
            list(meta["options"]),
            int(meta["label"]),
            parts.get("context", ""),
            parts.get("explanation", ""),
            record.language,
            fmt,
        )
    # Open QA with a context (PubMedQA's unlabelled set): the context goes first, as in data_prep's QA prompt.
    question = "\n\n".join(t for t in (parts.get("context", ""), parts["question"]) if t)
    return QA(item_id, question, parts["answer"], record.language)


def _original_rows(path: Path, fmt: str) -> Iterator[tuple[int, object]]:
    """(line, Item or RecordError) for a source in its original format, through data_prep's converter."""
    from data_prep.readers import SourceFile, decode, iter_rows
    from data_prep.records import DataPrepError
    from data_prep.records import Reject as SourceReject
    from data_prep.sources import SourceContext, get_format

    source = get_format(fmt)
    try:  # a whole-file problem (a JSON document that does not parse, an undecidable MedMCQA cop) is one line
        rows = [(line, decode(payload)) for line, payload in iter_rows(source.reader, SourceFile(str(path), path=path))]
        params = source.probe((row for _, row in rows), {}) if source.probe is not None else {}
    except DataPrepError as err:
        message = str(err)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    subject = path.stem
    for split in ("_test", "_dev", "_val", "_train"):
        subject = subject.removesuffix(split)
    ctx = SourceContext(source=fmt, subject=subject if fmt == "mmlu_csv" else None, params=params)
    for line, row in rows:
        result = row if isinstance(row, SourceReject) else source.convert(row, ctx)
        if isinstance(result, SourceReject):
            yield line, RecordError(f"{result.reason} ({result.code})")
        else:
            yield line, _item_from_record(result, fmt)


def read_items(path: str | Path, fmt: str) -> Iterator[tuple[str, Item | Reject]]:
    """("file:line", item) for each row of `path` in format `fmt`; a Reject for each unusable row."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt in ORIGINAL_FORMATS:
        seen_original: dict[str, str] = {}
        for number, item in _original_rows(path, fmt):
            where = f"{path}:{number}"
            if isinstance(item, RecordError):
                yield where, Reject(where, str(item))
            elif item.id in seen_original:
                yield where, Reject(where, f"duplicate item {item.id!r} (first at {seen_original[item.id]})", item.id)
            else:
                seen_original[item.id] = where
                yield where, item
        return
    parser = PARSERS[fmt]
    seen: dict[str, str] = {}
    for number, row in _raw_rows(path):
        where = f"{path}:{number}"
        if isinstance(row, RecordError):
            yield where, Reject(where, str(row))
            continue
        if not isinstance(row, dict):
            yield where, Reject(where, f"expected a JSON object, got {type(row).__name__}")
            continue
        try:
            item = parser(row)
        except RecordError as err:
            yield where, Reject(where, str(err), str(row.get("id", "")))
            continue
        if item.id in seen:
            yield where, Reject(where, f"duplicate id {item.id!r} (first at {seen[item.id]})", item.id)
            continue
        seen[item.id] = where
        yield where, item
