"""The format layer: one reader per original benchmark layout, one item type, for every stage.

data_prep (training records), the LLM stages (translation and chat synthesis) and eval_tasks
(scored docs) read benchmark and training files only through here, so a file yields the same
items, with the same gold option, the same rejects and the same audit in all three.

    from bimedix import formats
    read = formats.read_file(path, "medmcqa", formats.Context(language="en"))
    read.items      # [Item(kind="mcq", question, options, answer, context, language, line, ...)]
    read.rejects    # [(line, Reject(code, reason))]: unusable rows and later copies of duplicates
    read.params     # what the probe found: {"cop_base": 0, "cop_evidence": "0-based (hub copy): ..."}
    read.audit      # bimedix.audit.FileAudit: findings with file:line and counts

Layouts (FORMATS): medqa (4 or 5 options), medqa_hf (GBaker's sent1/ending*), medmcqa (the `cop`
base probed from the file), pubmedqa (ori_pqal / pqaa / pqau and the hub layout), mmlu_csv
(headerless CSV, English or Arabic; the cais/mmlu hub layout), mcq_json (the normalised MCQ),
qa_jsonl, chat_jsonl, medarabiq_csv (MedArabiQ's multiple-choice CSV).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bimedix.arabic import fold
from bimedix.audit import FileAudit
from bimedix.formats import layouts
from bimedix.formats.items import KINDS, LANGUAGES, Context, FormatError, Item, Reject, RowError
from bimedix.formats.layouts import as_yes_no_maybe, parse_option_block, split_arabic_options
from bimedix.formats.readers import READER_KINDS, NotCached, SourceFile, decode, iter_rows, load_hub

__all__ = [
    "FORMATS", "KINDS", "LANGUAGES", "READER_KINDS", "Context", "Format", "FormatError", "Item", "NotCached",
    "Read", "Reject", "RowError", "SourceFile", "as_yes_no_maybe", "convert_rows", "decode", "detect_layout",
    "get_format", "iter_rows", "load_hub", "parse_option_block", "read_file", "split_arabic_options",
]  # fmt: skip

Converter = Callable[[Any, Context, int], Item]
ProbeFn = Callable[[Iterable[Any], Mapping[str, Any]], dict[str, Any]]


def _rejecting(convert: Converter) -> Callable[[Any, Context, int], Item | Reject]:
    """A converter's RowError becomes a Reject; a row of the wrong shape is a Reject too."""

    @functools.wraps(convert)
    def wrapper(row: Any, ctx: Context, line: int = 0) -> Item | Reject:
        if isinstance(row, Reject):
            return row
        try:
            item = convert(row, ctx, line)
        except RowError as err:
            return Reject(err.code, err.message)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            return Reject("malformed", f"malformed row ({type(err).__name__}: {err})")
        return item if ctx.yes_no_maybe is None else _task_kind(item, ctx)

    return wrapper


def _task_kind(item: Item, ctx: Context) -> Item | Reject:
    """A scored task takes yes / no / maybe questions (PubMedQA) or lettered options, not the other."""
    if ctx.yes_no_maybe:
        if item.kind != "mcq":
            return Reject("missing_field", "no final_decision: an unlabelled row cannot be scored")
        found = as_yes_no_maybe(item)
        if found is None:
            return Reject("bad_options", f"options {list(item.options)!r} are not PubMedQA's yes / no / maybe")
        return found
    if item.kind != "mcq":
        return Reject("missing_field", f"a {item.kind} row has no options to score")
    if item.yes_no_maybe:
        return Reject(
            "bad_options",
            f"a PubMedQA row (yes / no / maybe) cannot feed {ctx.option_counts_of or 'a multiple-choice task'}",
        )
    return item


@dataclass(frozen=True)
class Format:
    name: str
    reader: str  # how readers.iter_rows reads the file: jsonl, csv, csv_header, json, json_dict
    convert: Callable[[Any, Context, int], Item | Reject]
    description: str
    probe: ProbeFn | None = None  # reads every row once before converting; returns Context.params
    params: tuple[str, ...] = ()  # the format-specific settings a caller may declare (passed to the probe)
    local: bool = True  # False: a hub layout only (no file format of its own)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("medqa", "jsonl", _rejecting(layouts.convert_medqa),
               "MedQA (USMLE) JSON lines: question, options {A..D} or {A..E}, answer_idx, answer"),
        Format("medmcqa", "jsonl", _rejecting(layouts.convert_medmcqa),
               "MedMCQA JSON lines: question, opa..opd, cop (1-based original or 0-based hub copy, probed), exp",
               probe=layouts.probe_medmcqa, params=("cop_base",)),
        Format("pubmedqa", "json_dict", _rejecting(layouts.convert_pubmedqa),
               "PubMedQA ori_pq*.json {PMID: {QUESTION, CONTEXTS, final_decision, LONG_ANSWER}}; hub layout"),
        Format("mmlu_csv", "csv", _rejecting(layouts.convert_mmlu_csv),
               "MMLU CSV, no header: question,A,B,C,D,answer (English or Arabic); cais/mmlu hub layout"),
        Format("mcq_json", "json", _rejecting(layouts.convert_mcq_json),
               "normalised MCQ, JSON array or lines: {question, options '(A) ..', answer '(A)', context}"),
        Format("qa_jsonl", "jsonl", _rejecting(layouts.convert_qa_jsonl),
               "open QA JSON lines: {question, answer[, context]}"),
        Format("chat_jsonl", "jsonl", _rejecting(layouts.convert_chat_jsonl),
               "multi-turn chats JSON lines: {messages: [{role, content}]}"),
        Format("medarabiq_csv", "csv_header", _rejecting(layouts.convert_medarabiq_csv),
               "MedArabiQ multiple-choice CSV: Question (stem + options أ. ب. ج. د.), Answer (option text), Category"),
        Format("medqa_hf", "jsonl", _rejecting(layouts.convert_medqa_hf),
               "MedQA as GBaker/MedQA-USMLE-4-options-hf: sent1, ending0..3, label (hub)", local=False),
    ]
}  # fmt: skip


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(n for n, f in FORMATS.items() if f.local)
        raise FormatError(f"unknown format {name!r}; known formats: {known}") from None


# Column sets that identify a layout in a dataset of unknown schema (the Arabic hub sets), most specific first.
LAYOUT_COLUMNS: list[tuple[str, set[str]]] = [
    ("medqa_hf", {"sent1", "ending0", "label"}),
    ("medmcqa", {"question", "opa", "opb", "opc", "opd", "cop"}),
    ("pubmedqa", {"question", "contexts", "final_decision"}),
    ("pubmedqa", {"question", "context", "final_decision"}),
    ("mmlu_csv", {"question", "a", "b", "c", "d", "answer"}),
    ("mmlu_csv", {"question", "choices", "answer"}),
    ("medqa", {"question", "options", "answer_idx"}),
    ("mcq_json", {"question", "options", "answer"}),  # options as "(A) ..\n(B) .." text; a mapping or list: medqa
]


def detect_layout(first_row: Mapping, source: str) -> str:
    """The format of a hub dataset from its columns (case-insensitive); FormatError naming them."""
    columns = {str(k).strip().lower() for k in first_row}
    lowered = {str(k).strip().lower(): v for k, v in first_row.items()}
    for name, needed in LAYOUT_COLUMNS:
        if needed <= columns:
            if name == "mcq_json" and not isinstance(lowered.get("options"), str):
                return "medqa"  # options as a mapping or list, the answer as text
            return name
    known = "; ".join(f"{name}: {', '.join(sorted(cols))}" for name, cols in LAYOUT_COLUMNS)
    raise FormatError(
        f"{source}: unrecognised column layout; columns found: {', '.join(sorted(columns)) or 'none'}; "
        f"expected one of: {known}"
    )


# ---------------------------------------------------------------------------------------------
# Reading a file: probe, convert, drop later copies of duplicates, audit.


@dataclass
class Read:
    """What one file (or hub split) gave: items, rejects (with lines), probe results, the audit."""

    label: str
    format: str
    items: list[Item] = field(default_factory=list)
    rejects: list[tuple[int, Reject]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    audit: FileAudit | None = None

    @property
    def rows(self) -> int:
        return len(self.items) + len(self.rejects)


def probe(fmt: Format, rows: Iterable[Any], declared: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The format's probe over decoded rows (no-op for formats without one); errors name `label`."""
    if fmt.probe is None:
        return {}
    try:
        return fmt.probe((r for r in rows if not isinstance(r, Reject)), declared)
    except FormatError as err:
        raise FormatError(f"{label}: {err}") from None


def convert_rows(
    rows: list[tuple[int, Any]],
    fmt: str | Format,
    ctx: Context | None = None,
    *,
    label: str,
    declared: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Read:
    """Decoded rows -> Read. `declared` goes to the probe (e.g. cop_base and where it was declared);
    `params` skips the probe (already run over a larger set of files)."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    ctx = ctx or Context()
    if params is None:
        params = probe(fmt, (row for _, row in rows), declared or {}, label)
    ctx = replace(ctx, params={**ctx.params, **params})
    mixed_ok = ctx.option_counts is not None and len(ctx.option_counts) > 1
    read = Read(label, fmt.name, params=dict(params), audit=FileAudit(label, mixed_ok))
    by_line: dict[int, Item] = {}
    for line, row in rows:
        result = fmt.convert(row, ctx, line)
        if isinstance(result, Reject):
            read.audit.reject(line, result.code, result.reason)
            read.rejects.append((line, result))
            continue
        first = read.audit.observe_item(result)
        if first is not None:
            read.rejects.append((line, duplicate_reject(by_line[first], result)))
            continue
        by_line[line] = result
        read.items.append(result)
    reworded = read.audit.reworded_rows()  # keyed by position among the kept rows: read.items' order
    if reworded:  # a later reworded copy is used once, as a duplicate is: the first of its cluster stays
        later = [(item.line, reworded[i]) for i, item in enumerate(read.items) if i in reworded]
        read.items = [item for i, item in enumerate(read.items) if i not in reworded]
        read.rejects += [
            (line, Reject("reworded_repeat", f"rewords the question of line {first} (audit: reworded_repeat)"))
            for line, first in later
        ]
        read.rejects.sort(key=lambda r: r[0])
    return read


def duplicate_reject(first: Item, later: Item) -> Reject:
    reason = f"repeats line {first.line} (same question and options)"
    if first.kind == "mcq" and fold(first.options[first.answer]) != fold(later.options[later.answer]):
        here, there = later.options[later.answer][:40], first.options[first.answer][:40]
        reason += f"; its gold answer differs ({later.letter} {here!r} here, {first.letter} {there!r} there): line {first.line} is used"
    return Reject("duplicate", reason)


def read_rows(path: Path, fmt: str | Format, label: str | None = None) -> list[tuple[int, Any]]:
    """Every row of a local file, decoded (a Reject for a line that is not valid JSON or UTF-8)."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    source = SourceFile(label or str(path), path=Path(path))
    source.check()
    return [(line, decode(payload)) for line, payload in iter_rows(fmt.reader, source)]


def read_file(
    path: Path | str,
    fmt: str | Format,
    ctx: Context | None = None,
    *,
    label: str | None = None,
    declared: Mapping[str, Any] | None = None,
) -> Read:
    """A local file in its original layout -> Read (see the module docstring)."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    label = label or str(path)
    return convert_rows(read_rows(Path(path), fmt, label), fmt, ctx, label=label, declared=declared)


def mmlu_subject(path: Path) -> str:
    """anatomy_test.csv -> anatomy (MMLU names its files <subject>_<split>.csv)."""
    subject = path.stem
    for split in ("_test", "_dev", "_val", "_train"):
        subject = subject.removesuffix(split)
    return subject
