"""Benchmark data for the bimedix_* tasks: one setting picks the source, converters make lm-eval docs.

The source (EVAL_DATA) is one of
  sample        the project's embedded synthetic sample (eval_tasks/sample_data/index.yaml; default)
  hub           the Hugging Face datasets in eval_tasks/config/hub_sources.yaml
  PATH          a folder holding index.yaml, or an index file itself, listing local files in their
                original formats (the layout of eval_tasks/sample_data/index.yaml)

Readers do the I/O and number the rows; converters are pure functions `row -> Record | Reject`.
Structural problems (unreadable file, missing field, unknown column layout) raise EvalDataError with
a one-line message naming the file and line or field. A row whose answer is not among its options
(or that has an empty question or option) is a Reject: counted and listed in the load report, never
scored. Reports of the tasks loaded in this process are kept in REPORTS for the results file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bimedix.mcq import OPTION_LETTERS, PUBMEDQA_LABELS
from eval_tasks import registry
from eval_tasks.text import normalise, parse_answer_key, strip_invisible

ENV_DATA = "BIMEDIX_EVAL_DATA"
ENV_DATA_ROOT = "BIMEDIX_EVAL_DATA_ROOT"
MAX_OPTIONS = len(OPTION_LETTERS["en"])


class EvalDataError(ValueError):
    """Benchmark data that cannot be read. The message is one line naming the file, row or field."""


@dataclass(frozen=True)
class Record:
    """One scorable question, whatever its source format."""

    id: str
    question: str
    choices: list[str]  # option texts (MCQ) or the language's yes/no/maybe labels (PubMedQA)
    answer: int  # index into choices
    context: str = ""  # PubMedQA's abstract, paragraphs joined by newlines


@dataclass(frozen=True)
class Reject:
    where: str  # file:line, or hub id and row
    reason: str


@dataclass
class SourceReport:
    source: str  # a file (relative to the data root) or a hub id
    format: str
    rows_in_source: int = 0  # rows the file or dataset holds
    rows_selected: int = 0  # rows the index entry selects (rows / where / ids)
    rows_scored: int = 0
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class LoadReport:
    task: str
    data: str  # sample | hub | the folder or index file
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def rows_scored(self) -> int:
        return sum(s.rows_scored for s in self.sources)

    @property
    def rejects(self) -> list[Reject]:
        return [r for s in self.sources for r in s.rejects]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["rows_scored"] = self.rows_scored
        out["rows_rejected"] = len(self.rejects)
        return out


REPORTS: dict[str, LoadReport] = {}


# --------------------------------------------------------------------------------------------------
# Converters: row (keys lower-cased) -> Record | Reject. Pure; raise EvalDataError on a missing field.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a converter needs to know about the task it feeds."""

    kind: str  # "mcq" or "pubmedqa"
    language: str
    cop_base: int = 1


def _field(row: dict, where: str, *names: str) -> Any:
    for name in names:
        if name in row:
            return row[name]
    raise EvalDataError(f"{where}: missing field {' or '.join(repr(n) for n in names)}")


def _text(value: Any, where: str, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise EvalDataError(f"{where}: field {name!r} should be text, found {type(value).__name__}")


def _mcq(row_id: str, question: str, options: list[str], key: Any, ctx: Context, where: str, *, number_base: int = 0):
    """A lettered multiple-choice question -> Record, or Reject when it cannot be scored."""
    if ctx.kind != "mcq":
        return _mcq_as_pubmedqa(row_id, question, options, key, ctx, where, number_base)
    if not question.strip():
        return Reject(where, "empty question")
    if not 2 <= len(options) <= MAX_OPTIONS:
        return Reject(where, f"{len(options)} options: expected 2 to {MAX_OPTIONS}")
    letters = OPTION_LETTERS["en"]
    for letter, text in zip(letters, options, strict=False):
        if not text.strip():
            return Reject(where, f"option {letter} is empty")
    answer = parse_answer_key(key, len(options), number_base=number_base)
    if answer is None:
        shown = ", ".join(letters[: len(options)])
        return Reject(where, f"answer {key!r} is not among the options ({shown})")
    return Record(row_id, question, list(options), answer)


def _label_index(value: Any) -> int | None:
    key = normalise(_text(value, "", "label")).strip(" .")
    for labels in PUBMEDQA_LABELS.values():
        for i, label in enumerate(labels):
            if key == normalise(label):
                return i
    return None


def _mcq_as_pubmedqa(row_id, question, options, key, ctx: Context, where, number_base):
    """A PubMedQA question written as MCQ (normalised JSON: (A) Yes. (B) No. (C) Maybe.)."""
    labels = [_label_index(text) for text in options]
    if None in labels or sorted(labels) != list(range(len(labels))):
        raise EvalDataError(f"{where}: options {options!r} are not PubMedQA's yes / no / maybe")
    picked = parse_answer_key(key, len(options), number_base=number_base)
    if picked is None:
        return Reject(where, f"answer {key!r} is not among the options")
    return _pubmedqa(row_id, question, "", labels[picked], ctx, where)


def _pubmedqa(row_id: str, question: str, context: str, label: int | None, ctx: Context, where: str):
    if ctx.kind != "pubmedqa":
        raise EvalDataError(f"{where}: a PubMedQA row (yes / no / maybe) cannot feed a multiple-choice task")
    if not question.strip():
        return Reject(where, "empty question")
    if label is None:
        return Reject(where, "final_decision is not one of yes / no / maybe")
    return Record(row_id, question, list(PUBMEDQA_LABELS[ctx.language]), label, context)


_OPTION_LINE = re.compile(r"^\s*\(\s*([A-Za-zأبجده])\s*\)\s?(.*)$")


def parse_option_block(block: str) -> tuple[list[str], list[str]]:
    """'(A) x\\n(B) y' -> (['A', 'B'], ['x', 'y']); a line without a marker continues the option above."""
    letters: list[str] = []
    texts: list[str] = []
    for line in strip_invisible(block).splitlines():
        match = _OPTION_LINE.match(line)
        if match:
            letters.append(match.group(1))
            texts.append(match.group(2).rstrip())
        elif texts:
            texts[-1] += "\n" + line
        elif line.strip():
            return [], []
    return letters, texts


def convert_mcq(row: dict, where: str, ctx: Context) -> Record | Reject:
    """Normalised MCQ (Apollo / XMedBench): question, options "(A) ..\\n(B) ..", answer "(A)", context."""
    question = _text(_field(row, where, "question"), where, "question")
    block = _text(_field(row, where, "options"), where, "options")
    letters, texts = parse_option_block(block)
    if not letters:
        return Reject(where, "options are not written as (A) .. (B) ..")
    expected = [i for i in range(len(letters))]
    if [parse_answer_key(letter, MAX_OPTIONS) for letter in letters] != expected:
        return Reject(where, f"option letters {''.join(letters)} are not in order from A")
    row_id = _text(row.get("id", ""), where, "id") or where
    record = _mcq(row_id, question, texts, _field(row, where, "answer"), ctx, where)
    if isinstance(record, Record) and ctx.kind == "pubmedqa":
        context = _text(row.get("context", ""), where, "context")
        record = Record(record.id, record.question, record.choices, record.answer, context)
    return record


def convert_medqa(row: dict, where: str, ctx: Context) -> Record | Reject:
    """MedQA: question, options {"A": .., "D": ..} (or a list), answer_idx "A" (or only the answer text)."""
    question = _text(_field(row, where, "question"), where, "question")
    options = _field(row, where, "options")
    if isinstance(options, dict):
        keys = sorted(options, key=lambda k: (parse_answer_key(k, MAX_OPTIONS + 1) is None, str(k)))
        texts = [_text(options[k], where, f"options.{k}") for k in keys]
    elif isinstance(options, list):
        texts = [
            _text(o.get("value"), where, "options") if isinstance(o, dict) else _text(o, where, "options")
            for o in options
        ]
    else:
        raise EvalDataError(
            f"{where}: field 'options' should be a mapping A..D or a list, found {type(options).__name__}"
        )
    row_id = _text(row.get("id", ""), where, "id") or where
    if "answer_idx" in row:
        return _mcq(row_id, question, texts, row["answer_idx"], ctx, where)
    answer = normalise(_text(_field(row, where, "answer_idx", "answer"), where, "answer"))
    matches = [i for i, text in enumerate(texts) if normalise(text) == answer]
    if len(matches) != 1:
        return Reject(where, f"answer {row['answer']!r} is not among the options")
    return _mcq(row_id, question, texts, matches[0], ctx, where)


def convert_medqa_hf(row: dict, where: str, ctx: Context) -> Record | Reject:
    """MedQA as GBaker/MedQA-USMLE-4-options-hf (lm-eval's medqa_4options): sent1, ending0..3, label."""
    question = _text(_field(row, where, "sent1"), where, "sent1")
    texts = []
    while f"ending{len(texts)}" in row:
        texts.append(_text(row[f"ending{len(texts)}"], where, f"ending{len(texts)}"))
    row_id = _text(row.get("id", ""), where, "id") or where
    return _mcq(row_id, question, texts, _field(row, where, "label"), ctx, where)


def convert_medmcqa(row: dict, where: str, ctx: Context) -> Record | Reject:
    """MedMCQA: id, question, opa..opd, cop (1-based in the original release, 0-based on the hub)."""
    question = _text(_field(row, where, "question"), where, "question")
    texts = [_text(_field(row, where, f"op{c}"), where, f"op{c}") for c in "abcd"]
    row_id = _text(row.get("id", ""), where, "id") or where
    return _mcq(row_id, question, texts, _field(row, where, "cop"), ctx, where, number_base=ctx.cop_base)


def convert_mmlu(row: dict, where: str, ctx: Context) -> Record | Reject:
    """MMLU CSV columns: question, A, B, C, D, answer (a letter)."""
    question = _text(_field(row, where, "question"), where, "question")
    texts = [_text(_field(row, where, c), where, c) for c in "abcd"]
    return _mcq(
        _text(row.get("id", ""), where, "id") or where, question, texts, _field(row, where, "answer"), ctx, where
    )


def convert_mmlu_hf(row: dict, where: str, ctx: Context) -> Record | Reject:
    """MMLU as cais/mmlu: question, choices [..], answer (0-based index)."""
    question = _text(_field(row, where, "question"), where, "question")
    choices = _field(row, where, "choices")
    if not isinstance(choices, list):
        raise EvalDataError(f"{where}: field 'choices' should be a list, found {type(choices).__name__}")
    texts = [_text(c, where, "choices") for c in choices]
    return _mcq(
        _text(row.get("id", ""), where, "id") or where, question, texts, _field(row, where, "answer"), ctx, where
    )


def convert_pubmedqa(row: dict, where: str, ctx: Context) -> Record | Reject:
    """PubMedQA: QUESTION, CONTEXTS [..], final_decision (ori_pqal.json, bigbio) or question, context
    (a {"contexts": [..]} mapping, a list or text), final_decision (qiaojin/PubMedQA)."""
    question = _text(_field(row, where, "question"), where, "question")
    context = _field(row, where, "contexts", "context")
    if isinstance(context, dict):
        context = _field(context, f"{where} context", "contexts")
    if isinstance(context, list):
        context = "\n".join(_text(c, where, "contexts") for c in context)
    context = _text(context, where, "context")
    row_id = _text(row.get("pmid", row.get("pubid", "")), where, "pmid") or where
    return _pubmedqa(row_id, question, context, _label_index(_field(row, where, "final_decision")), ctx, where)


Converter = Callable[[dict, str, Context], "Record | Reject"]
LAYOUTS: dict[str, Converter] = {
    "mcq": convert_mcq,
    "medqa": convert_medqa,
    "medqa_hf": convert_medqa_hf,
    "medmcqa": convert_medmcqa,
    "mmlu": convert_mmlu,
    "mmlu_hf": convert_mmlu_hf,
    "pubmedqa": convert_pubmedqa,
}
# Column sets that identify a layout in a dataset of unknown schema (the Arabic hub sets), most specific first.
LAYOUT_COLUMNS: list[tuple[str, set[str]]] = [
    ("medqa_hf", {"sent1", "ending0", "label"}),
    ("medmcqa", {"question", "opa", "opb", "opc", "opd", "cop"}),
    ("pubmedqa", {"question", "contexts", "final_decision"}),
    ("pubmedqa", {"question", "context", "final_decision"}),
    ("mmlu", {"question", "a", "b", "c", "d", "answer"}),
    ("mmlu_hf", {"question", "choices", "answer"}),
    ("medqa", {"question", "options", "answer_idx"}),
    ("mcq", {"question", "options", "answer"}),  # options as "(A) ..\n(B) .." text, or a mapping / list (medqa)
]


def detect_layout(first_row: dict, source: str) -> str:
    columns = set(first_row)
    for layout, needed in LAYOUT_COLUMNS:
        if needed <= columns:
            if layout == "mcq" and not isinstance(first_row.get("options"), str):
                return "medqa"  # options as a mapping or list, answer as text
            return layout
    known = "; ".join(f"{name}: {', '.join(sorted(cols))}" for name, cols in LAYOUT_COLUMNS)
    raise EvalDataError(
        f"{source}: unrecognised column layout; columns found: {', '.join(sorted(columns)) or 'none'}; expected one of: {known}"
    )


# --------------------------------------------------------------------------------------------------
# Readers: a local file in its original format -> (where, row) pairs, keys lower-cased.
# --------------------------------------------------------------------------------------------------


def _lower_keys(row: dict) -> dict:
    return {str(k).strip().lower(): v for k, v in row.items()}


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalDataError(f"{label}: file not found") from None
    except UnicodeDecodeError as err:
        raise EvalDataError(f"{label}: not UTF-8 text (byte {err.start})") from None


def read_jsonl(path: Path, label: str) -> Iterator[tuple[str, dict]]:
    for number, line in enumerate(_read_text(path, label).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise EvalDataError(f"{label}:{number}: invalid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(row, dict):
            raise EvalDataError(f"{label}:{number}: expected a JSON object, found {type(row).__name__}")
        yield f"{label}:{number}", _lower_keys(row)


def _load_json(path: Path, label: str) -> Any:
    try:
        return json.loads(_read_text(path, label))
    except json.JSONDecodeError as err:
        raise EvalDataError(f"{label}:{err.lineno}: invalid JSON ({err.msg}, column {err.colno})") from None


def read_json_list(path: Path, label: str) -> Iterator[tuple[str, dict]]:
    items = _load_json(path, label)
    if not isinstance(items, list):
        raise EvalDataError(f"{label}: expected a JSON array of questions, found {type(items).__name__}")
    for number, item in enumerate(items):
        if not isinstance(item, dict):
            raise EvalDataError(f"{label} item {number}: expected a JSON object, found {type(item).__name__}")
        yield f"{label} item {number}", _lower_keys(item)


def read_pubmedqa(path: Path, label: str) -> Iterator[tuple[str, dict]]:
    items = _load_json(path, label)
    if not isinstance(items, dict):
        raise EvalDataError(
            f"{label}: expected a JSON object keyed by PMID (ori_pqal.json), found {type(items).__name__}"
        )
    for pmid, item in items.items():
        if not isinstance(item, dict):
            raise EvalDataError(f"{label} PMID {pmid}: expected a JSON object, found {type(item).__name__}")
        yield f"{label} PMID {pmid}", {"pmid": str(pmid), **_lower_keys(item)}


MMLU_COLUMNS = ("question", "a", "b", "c", "d", "answer")


def read_mmlu_csv(path: Path, label: str) -> Iterator[tuple[str, dict]]:
    reader = csv.reader(_read_text(path, label).splitlines(keepends=True))
    start = 1
    try:
        for cells in reader:
            where = f"{label}:{start}"
            start = reader.line_num + 1
            if not cells or cells == [""]:
                continue
            if [c.strip().lower() for c in cells] == list(MMLU_COLUMNS):
                continue  # a header row; the original files have none
            if len(cells) != len(MMLU_COLUMNS):
                raise EvalDataError(f"{where}: expected 6 columns (question,A,B,C,D,answer), found {len(cells)}")
            yield where, dict(zip(MMLU_COLUMNS, cells, strict=True))
    except csv.Error as err:
        raise EvalDataError(f"{label}:{reader.line_num}: malformed CSV ({err})") from None


@dataclass(frozen=True)
class Format:
    reader: Callable[[Path, str], Iterator[tuple[str, dict]]]
    layout: str
    cop_base: int = 1


FORMATS: dict[str, Format] = {
    "medqa": Format(read_jsonl, "medqa"),
    "medmcqa": Format(read_jsonl, "medmcqa", cop_base=1),  # the original release; `cop_base: 0` for hub exports
    "pubmedqa": Format(read_pubmedqa, "pubmedqa"),
    "mmlu_csv": Format(read_mmlu_csv, "mmlu"),
    "mcq_json": Format(read_json_list, "mcq"),
}


# --------------------------------------------------------------------------------------------------
# Sources: the index of a local folder, or the hub.
# --------------------------------------------------------------------------------------------------

INDEX_KEYS = {"task", "language", "path", "format"}
INDEX_OPTIONAL = {"cop_base", "rows", "where", "ids"}


@dataclass(frozen=True)
class IndexEntry:
    task: str
    language: str
    path: str
    format: str
    cop_base: int | None = None
    rows: tuple[int, int] | None = None  # [start, stop) positions in the file, before `where`
    where: tuple[tuple[str, str], ...] = ()  # keep rows whose field equals the value (e.g. source: medmcqa)
    ids: str | None = None  # a JSON file whose keys (or items) are the row ids to keep (PubMedQA's test PMIDs)


def _index_entry(raw: Any, number: int, label: str) -> IndexEntry:
    here = f"{label} entry {number}"
    if not isinstance(raw, dict):
        raise EvalDataError(f"{here}: expected a mapping with task, language, path, format")
    missing = INDEX_KEYS - set(raw)
    if missing:
        raise EvalDataError(f"{here}: missing {', '.join(sorted(missing))}")
    unknown = set(raw) - INDEX_KEYS - INDEX_OPTIONAL
    if unknown:
        raise EvalDataError(
            f"{here}: unknown key {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(INDEX_KEYS | INDEX_OPTIONAL))})"
        )
    task = str(raw["task"])
    try:
        task_id = registry.parse_task(task)
    except KeyError:
        raise EvalDataError(f"{here}: unknown task {task!r} (tasks are bimedix_<en|ar>_<benchmark>)") from None
    if task_id.generative:
        raise EvalDataError(
            f"{here}: name the log-likelihood task {task_id.data_name!r}; its _gen variant shares the data"
        )
    if raw["language"] != task_id.language:
        raise EvalDataError(f"{here}: language {raw['language']!r} does not match task {task} ({task_id.language})")
    if raw["format"] not in FORMATS:
        raise EvalDataError(f"{here}: unknown format {raw['format']!r} (known: {', '.join(FORMATS)})")
    rows = raw.get("rows")
    if rows is not None and not (
        isinstance(rows, list)
        and len(rows) == 2
        and all(isinstance(r, int) and r >= 0 for r in rows)
        and rows[0] <= rows[1]
    ):
        raise EvalDataError(f"{here}: rows should be [start, stop] with 0 <= start <= stop, found {rows!r}")
    where = raw.get("where") or {}
    if not isinstance(where, dict):
        raise EvalDataError(f"{here}: where should be a mapping field: value, found {where!r}")
    cop_base = raw.get("cop_base")
    if cop_base not in (None, 0, 1):
        raise EvalDataError(f"{here}: cop_base should be 0 or 1, found {cop_base!r}")
    return IndexEntry(
        task=task,
        language=raw["language"],
        path=str(raw["path"]),
        format=raw["format"],
        cop_base=cop_base,
        rows=tuple(rows) if rows is not None else None,
        where=tuple((str(k).lower(), str(v)) for k, v in where.items()),
        ids=str(raw["ids"]) if raw.get("ids") is not None else None,
    )


@cache
def read_index(index_path: Path) -> tuple[IndexEntry, ...]:
    label = str(index_path)
    try:
        raw = yaml.safe_load(_read_text(index_path, label))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise EvalDataError(f"{label}{line}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(raw, list):
        raise EvalDataError(f"{label}: expected a YAML list of {{task, language, path, format}} entries")
    return tuple(_index_entry(entry, number, label) for number, entry in enumerate(raw, start=1))


@dataclass(frozen=True)
class DataSource:
    """Where the data comes from: 'sample', 'hub', or a local index (and the root its paths resolve against)."""

    kind: str  # sample | hub | local
    index: Path | None = None
    root: Path | None = None

    @property
    def label(self) -> str:
        return self.kind if self.kind != "local" else str(self.index)


def resolve_source(value: str | None = None, root: str | None = None) -> DataSource:
    """EVAL_DATA (and EVAL_DATA_ROOT) -> DataSource; relative paths resolve against the current directory."""
    value = (value or os.environ.get(ENV_DATA) or "sample").strip()
    root = root or os.environ.get(ENV_DATA_ROOT) or None
    if value == "hub":
        return DataSource("hub")
    if value == "sample":
        index = registry.SAMPLE_INDEX
        return DataSource("sample", index, Path(root).resolve() if root else index.parent)
    path = Path(value).expanduser().resolve()
    index = path / "index.yaml" if path.is_dir() else path
    if not index.is_file():
        where = f"{path} has no index.yaml" if path.is_dir() else f"{value}: no such folder or index file"
        raise EvalDataError(f"EVAL_DATA: {where} (use sample, hub, or a folder with index.yaml)")
    return DataSource("local", index, Path(root).resolve() if root else index.parent)


def _select_ids(path: Path, label: str) -> set[str]:
    data = _load_json(path, label)
    if isinstance(data, dict):
        return {str(k) for k in data}
    if isinstance(data, list):
        return {str(k) for k in data}
    raise EvalDataError(f"{label}: expected a JSON object or array of ids, found {type(data).__name__}")


def _convert_rows(
    rows: list[tuple[str, dict]], layout: str, ctx: Context, report: SourceReport, records: list[Record]
) -> None:
    converter = LAYOUTS[layout]
    for where, row in rows:
        result = converter(row, where, ctx)
        if isinstance(result, Reject):
            report.rejects.append(result)
        else:
            records.append(result)
            report.rows_scored += 1


def _load_local(task: registry.TaskId, source: DataSource) -> tuple[list[Record], LoadReport]:
    entries = [e for e in read_index(source.index) if e.task == task.data_name]
    if not entries:
        raise EvalDataError(f"{source.index}: no entry for task {task.data_name}")
    report = LoadReport(task.data_name, source.label)
    records: list[Record] = []
    bench = registry.benchmark(task.benchmark)
    for entry in entries:
        fmt = FORMATS[entry.format]
        path = source.root / entry.path
        label = _display(path)
        rows = list(fmt.reader(path, label))
        sub = SourceReport(label, entry.format, rows_in_source=len(rows))
        if entry.rows is not None:
            rows = rows[entry.rows[0] : entry.rows[1]]
        for key, value in entry.where:
            rows = [(w, r) for w, r in rows if str(r.get(key)) == value]
        if entry.ids is not None:
            keep = _select_ids(source.root / entry.ids, _display(source.root / entry.ids))
            rows = [(w, r) for w, r in rows if str(r.get("pmid", r.get("id"))) in keep]
        sub.rows_selected = len(rows)
        cop_base = entry.cop_base if entry.cop_base is not None else fmt.cop_base
        _convert_rows(rows, fmt.layout, Context(bench.kind, task.language, cop_base), sub, records)
        report.sources.append(sub)
    return records, report


def _display(path: Path) -> str:
    """A path as the user should see it: relative to the current directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def pubmedqa_test_split(rows: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """PubMedQA's standard 500-question test set, from the 1000 labelled questions in their file order.

    The PubMedQA authors' preprocess/split_dataset.py, split(dataset, 2): random.seed(0), then per label
    (yes, no, maybe, in that order) shuffle the PMIDs and cut them at ceil(n / 2); the second parts are
    the test set (when the parts differ in size, one random pick moves from the first to the second).
    Re-run here on the hub copy, whose rows keep ori_pqal.json's order (checked by sha256 by the caller).
    """
    rnd = random.Random(0)
    by_label: dict[str, list[int]] = {"yes": [], "no": [], "maybe": []}
    for position, (where, row) in enumerate(rows):
        decision = str(row.get("final_decision", "")).strip().lower()
        if decision not in by_label:
            raise EvalDataError(f"{where}: final_decision {decision!r} is not yes / no / maybe")
        by_label[decision].append(position)
    halves: list[list[int]] = [[], []]
    for positions in by_label.values():
        rnd.shuffle(positions)
        cut = math.ceil(len(positions) / 2)
        halves[0] += positions[:cut]
        halves[1] += positions[cut:]
    if len(halves[1]) != len(halves[0]):  # the authors' rebalancing: move one random pick to the last part
        picked = rnd.choice(halves[0])
        halves[0].remove(picked)
        halves[1].append(picked)
    return [rows[p] for p in halves[1]]


SELECTIONS: dict[str, Callable[[list[tuple[str, dict]]], list[tuple[str, dict]]]] = {
    "pubmedqa_test_split": pubmedqa_test_split,
}


def _row_ids_digest(rows: list[tuple[str, dict]]) -> str:
    ids = sorted(str(r.get("pmid", r.get("pubid", r.get("id", "")))) for _, r in rows)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _load_hub(task: registry.TaskId) -> tuple[list[Record], LoadReport]:
    spec = registry.hub_sources().get(task.data_name)
    if spec is None:
        raise EvalDataError(f"eval_tasks/config/hub_sources.yaml: no entry for task {task.data_name}")
    hub_id = spec["path"] + (f" ({spec['name']})" if spec.get("name") else "")
    try:
        import datasets

        dataset = datasets.load_dataset(spec["path"], spec.get("name"), split=spec["split"])
    except Exception as err:  # datasets raises many types (connection, missing split, offline mode)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EvalDataError(
            f"{task.data_name}: cannot load {hub_id} split {spec['split']!r} from the Hugging Face hub: {reason}"
        ) from None
    rows = [(f"{hub_id} row {i}", _lower_keys(row)) for i, row in enumerate(dataset)]
    if not rows:
        raise EvalDataError(f"{task.data_name}: {hub_id} split {spec['split']!r} is empty")
    layout = detect_layout(rows[0][1], hub_id)
    sub = SourceReport(hub_id, f"hub:{layout}", rows_in_source=len(rows))
    if spec.get("select"):
        rows = SELECTIONS[spec["select"]](rows)
        if spec.get("sha256") and _row_ids_digest(rows) != spec["sha256"]:
            raise EvalDataError(
                f"{task.data_name}: {spec['select']} on {hub_id} did not give the expected rows (sha256 of the ids differs);"
                " point EVAL_DATA at a folder with ori_pqal.json and test_ground_truth.json instead"
            )
    sub.rows_selected = len(rows)
    bench = registry.benchmark(task.benchmark)
    records: list[Record] = []
    _convert_rows(rows, layout, Context(bench.kind, task.language, int(spec.get("cop_base", 1))), sub, records)
    return records, LoadReport(task.data_name, "hub", [sub])


def load_records(task: str | registry.TaskId, source: DataSource | None = None) -> tuple[list[Record], LoadReport]:
    """The scorable records of a task and the report of what was read, scored and rejected."""
    task_id = registry.parse_task(task) if isinstance(task, str) else task
    source = source or resolve_source()
    records, report = _load_hub(task_id) if source.kind == "hub" else _load_local(task_id, source)
    if not records:
        raise EvalDataError(f"{task_id.data_name}: no scorable rows in {source.label} ({len(report.rejects)} rejected)")
    REPORTS[task_id.data_name] = report
    return records, report


def to_docs(records: list[Record], task: registry.TaskId) -> list[dict]:
    """Records -> the lm-eval docs of a bimedix_* task (what utils.doc_to_text and friends read)."""
    return [
        {
            "id": r.id,
            "question": r.question,
            "choices": list(r.choices),
            "answer": r.answer,
            "context": r.context,
            "benchmark": task.benchmark,
            "language": task.language,
        }
        for r in records
    ]
