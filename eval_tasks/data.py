"""Benchmark data for the bimedix_* tasks: one setting picks the source, bimedix.formats reads it.

The source (EVAL_DATA) is one of
  sample        the project's embedded synthetic sample (eval_tasks/sample_data/index.yaml)
  hub           the Hugging Face datasets in eval_tasks/hub_sources.yaml
  PATH          a folder holding index.yaml, or an index file itself, listing local files in their
                original formats (the layout of eval_tasks/sample_data/index.yaml)

Every file (and hub split) is read by `bimedix.formats`, the reader data_prep and the LLM stages use,
so a file gives the same items and gold letters here as there. A row that cannot be scored (answer
not among the options, an empty field, another script than the task's language, leaked markup,
an option count the task does not score, ...) is a Reject: counted, listed with its file:line and
reason in the load report, never scored. A row that repeats an earlier row's question and options
is scored once. `gate_problems` says when a source must be refused (too many rows unusable, or
too many repeating another's question); check-data and every run refuse such a source.

Public entry points: `load_records(task, source)` (the items a task scores and its report),
`scored_set(eval_data)` (every scored item of a source: what data_prep decontaminates against),
`resolve_source`, `read_index`, `to_docs`. Reports of the tasks loaded in this process are kept in
REPORTS for the results file.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bimedix import formats
from bimedix.audit import Gate
from bimedix.files import sha256_file
from bimedix.formats import Context, FormatError, Item
from eval_tasks import registry

ENV_DATA = "BIMEDIX_EVAL_DATA"
ENV_DATA_ROOT = "BIMEDIX_EVAL_DATA_ROOT"


class EvalDataError(ValueError):
    """Benchmark data that cannot be read or must not be scored. One line naming the file, row or field."""


@dataclass(frozen=True)
class Reject:
    where: str  # file:line, or hub id and row
    reason: str
    code: str = ""


@dataclass
class SourceReport:
    source: str  # a file (relative to the current folder) or a hub id
    format: str
    rows_in_source: int = 0  # rows the file or dataset holds
    rows_selected: int = 0  # rows the index entry selects (rows / where / ids)
    rows_scored: int = 0
    rejects: list[Reject] = field(default_factory=list)
    params: dict = field(default_factory=dict)  # what the format's probe found (MedMCQA cop base and evidence)
    audit: dict = field(default_factory=dict)  # bimedix.audit.FileAudit.to_dict()
    sha256: str | None = None  # of the file (local sources)


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

    def audit_counts(self) -> dict[str, int]:
        """Rows per finding code over the task's sources (duplicate, repeated_question, answer_not_in_options, ...)."""
        counts: dict[str, int] = {}
        for source in self.sources:
            for finding in source.audit.get("findings", []):
                counts[finding["code"]] = counts.get(finding["code"], 0) + finding["count"]
        return counts

    def to_dict(self) -> dict:
        out = asdict(self)
        out["rows_scored"] = self.rows_scored
        out["rows_rejected"] = len(self.rejects)
        out["audit_counts"] = self.audit_counts()
        return out


REPORTS: dict[str, LoadReport] = {}


@cache
def default_gate() -> Gate:
    audit = registry.settings()["audit"]
    return Gate(float(audit["max_rejected_share"]), float(audit["max_repeated_share"]))


def task_context(task: registry.TaskId) -> Context:
    """What the format layer checks for this task: its language, the option counts it scores, and
    whether it takes yes / no / maybe questions (PubMedQA) or lettered options."""
    bench = registry.benchmark(task.benchmark)
    return Context(
        language=task.language,
        option_counts=tuple(bench.options),
        option_counts_of=f"task {task.data_name}",
        yes_no_maybe=bench.kind == "pubmedqa",
    )


# --------------------------------------------------------------------------------------------------
# Local files: the index
# --------------------------------------------------------------------------------------------------

INDEX_KEYS = {"task", "language", "path", "format"}
INDEX_OPTIONAL = {"cop_base", "rows", "where", "ids"}
LOCAL_FORMATS = tuple(
    name for name, fmt in formats.FORMATS.items() if fmt.local and name not in ("qa_jsonl", "chat_jsonl")
)


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


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalDataError(f"{label}: file not found") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise EvalDataError(f"{label}:{line}: not UTF-8 text (byte {err.object[err.start]:#04x})") from None


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
    if raw["format"] not in LOCAL_FORMATS:
        raise EvalDataError(f"{here}: unknown format {raw['format']!r} (known: {', '.join(LOCAL_FORMATS)})")
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


SAMPLE_WARNING = (
    "EVAL_DATA=sample: scoring the embedded SYNTHETIC sample (6 questions per task, written for this project): "
    "a smoke test of the plumbing, not the benchmark; its scores mean nothing"
)
NO_SOURCE = (
    'no benchmark data named: pass --metadata \'{"eval_data": "hub"}\' (the real benchmarks), a folder of '
    'local files, or "sample" (the project\'s 6-question synthetic smoke-test sample), or set BIMEDIX_EVAL_DATA'
)


def resolve_source(value: str | None = None, root: str | None = None, *, default: str | None = "sample") -> DataSource:
    """EVAL_DATA (and EVAL_DATA_ROOT) -> DataSource; relative paths resolve against the current directory.
    default=None: no value and no $BIMEDIX_EVAL_DATA is an error (plain lm-eval must name its data)."""
    value = (value or os.environ.get(ENV_DATA) or default or "").strip()
    if not value:
        raise EvalDataError(NO_SOURCE)
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
    import json

    try:
        data = json.loads(_read_text(path, label))
    except json.JSONDecodeError as err:
        raise EvalDataError(f"{label}:{err.lineno}: invalid JSON ({err.msg}, column {err.colno})") from None
    if isinstance(data, (dict, list)):
        return {str(k) for k in data}
    raise EvalDataError(f"{label}: expected a JSON object or array of ids, found {type(data).__name__}")


def _row_value(row: Any, key: str) -> Any:
    if not isinstance(row, dict):
        return None
    for k, v in row.items():
        if str(k).strip().lower() == key:
            return v
    return None


def _row_id(row: Any) -> str | None:
    for key in ("_key", "pmid", "pubid", "id"):
        value = _row_value(row, key)
        if value is not None:
            return str(value)
    return None


def _score(
    rows: list[tuple[int, Any]],
    fmt: str,
    task: registry.TaskId,
    label: str,
    declared: dict,
    where: Callable[[int], str],
) -> tuple[list[Item], SourceReport]:
    """Selected rows of one source -> its scored items and report, through bimedix.formats."""
    try:
        read = formats.convert_rows(rows, fmt, task_context(task), label=label, declared=declared)
    except FormatError as err:
        raise EvalDataError(str(err)) from None
    report = SourceReport(label, fmt, rows_selected=len(rows), rows_scored=len(read.items), params=read.params)
    report.rejects = [Reject(where(line), reject.reason, reject.code) for line, reject in read.rejects]
    report.audit = read.audit.to_dict()
    return read.items, report


def _load_local(task: registry.TaskId, source: DataSource) -> tuple[list[Item], LoadReport]:
    entries = [e for e in read_index(source.index) if e.task == task.data_name]
    if not entries:
        raise EvalDataError(f"{source.index}: no entry for task {task.data_name}")
    report = LoadReport(task.data_name, source.label)
    items: list[Item] = []
    for entry in entries:
        path = source.root / entry.path
        label = _display(path)
        try:
            rows = formats.read_rows(path, entry.format, label)
        except FormatError as err:
            raise EvalDataError(str(err)) from None
        in_source = len(rows)
        if entry.rows is not None:
            rows = rows[entry.rows[0] : entry.rows[1]]
        for key, value in entry.where:
            rows = [(n, r) for n, r in rows if str(_row_value(r, key)) == value]
        if entry.ids is not None:
            keep = _select_ids(source.root / entry.ids, _display(source.root / entry.ids))
            rows = [(n, r) for n, r in rows if _row_id(r) in keep]
        declared = {"cop_base": entry.cop_base, "cop_base_from": f"cop_base in {_display(source.index)}",
                    "cop_base_hint": f"set cop_base: 0 or 1 on its entry in {_display(source.index)}"}  # fmt: skip
        found, sub = _score(rows, entry.format, task, label, declared, lambda n, label=label: f"{label}:{n}")
        sub.rows_in_source = in_source
        sub.sha256 = sha256_file(path)
        items += found
        report.sources.append(sub)
    return items, report


def _display(path: Path) -> str:
    """A path as the user should see it: relative to the current directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------
# The hub
# --------------------------------------------------------------------------------------------------


def pubmedqa_test_split(rows: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """PubMedQA's standard 500-question test set, from the 1000 labelled questions in their file order.

    The PubMedQA authors' preprocess/split_dataset.py, split(dataset, 2): random.seed(0), then per label
    (yes, no, maybe, in that order) shuffle the PMIDs and cut them at ceil(n / 2); the second parts are
    the test set (when the parts differ in size, one random pick moves from the first to the second).
    Re-run here on the hub copy, whose rows keep ori_pqal.json's order (checked by sha256 by the caller).
    """
    rnd = random.Random(0)
    pubmedqa = formats.FORMATS["pubmedqa"]
    by_label: dict[int, list[int]] = {0: [], 1: [], 2: []}  # yes, no, maybe
    for position, (line, row) in enumerate(rows):
        item = pubmedqa.convert(row, Context(), line)
        if isinstance(item, formats.Reject) or item.kind != "mcq":
            reason = item.reason if isinstance(item, formats.Reject) else "no final_decision"
            raise EvalDataError(f"row {line}: {reason}; the PubMedQA test split needs every labelled row")
        by_label[item.answer].append(position)
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


SELECTIONS: dict[str, Callable[[list[tuple[int, Any]]], list[tuple[int, Any]]]] = {
    "pubmedqa_test_split": pubmedqa_test_split,
}


def _row_ids_digest(rows: list[tuple[int, Any]]) -> str:
    ids = sorted(_row_id(r) or "" for _, r in rows)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def hub_spec(task: registry.TaskId) -> dict:
    spec = registry.hub_sources().get(task.data_name)
    if spec is None:
        if registry.benchmark(task.benchmark).local_only:
            raise EvalDataError(
                f"{task.data_name}: {registry.benchmark(task.benchmark).column} is not read from the hub (its licence "
                "forbids redistribution); point EVAL_DATA at a folder whose index.yaml lists your own copy (eval_tasks/README.md)"
            )
        raise EvalDataError(f"{registry.HUB_SOURCES}: no entry for task {task.data_name}")
    return spec


def _load_hub(task: registry.TaskId, *, cache_only: bool = False) -> tuple[list[Item], LoadReport]:
    spec = hub_spec(task)
    hub_id = spec["path"] + (f" ({spec['name']})" if spec.get("name") else "")
    try:
        dataset = formats.load_hub(spec["path"], spec.get("name"), spec["split"], cache_only=cache_only)
    except formats.NotCached as err:
        raise EvalDataError(
            f"EVAL_DATA=hub: {err}; fetch it once with the network (`python -m eval_tasks check-data --data hub`)"
        ) from None
    except FormatError as err:
        raise EvalDataError(f"{task.data_name}: {err}") from None
    rows = list(enumerate(dataset, start=1))
    if not rows:
        raise EvalDataError(f"{task.data_name}: {hub_id} split {spec['split']!r} is empty")
    try:
        layout = formats.detect_layout(rows[0][1], hub_id)
    except FormatError as err:
        raise EvalDataError(str(err)) from None
    in_source = len(rows)
    if spec.get("select"):
        rows = SELECTIONS[spec["select"]](rows)
        if spec.get("sha256") and _row_ids_digest(rows) != spec["sha256"]:
            raise EvalDataError(
                f"{task.data_name}: {spec['select']} on {hub_id} did not give the expected rows (sha256 of the ids differs);"
                " point EVAL_DATA at a folder with ori_pqal.json and test_ground_truth.json instead"
            )
    declared = {"cop_base": spec.get("cop_base"), "cop_base_from": f"cop_base in {registry.HUB_SOURCES}",
                "cop_base_hint": f"set cop_base: 0 or 1 on {task.data_name} in {registry.HUB_SOURCES}"}  # fmt: skip
    items, sub = _score(rows, layout, task, hub_id, declared, lambda n: f"{hub_id} row {n}")
    sub.format = f"hub:{layout}"
    sub.rows_in_source = in_source
    return items, LoadReport(task.data_name, "hub", [sub])


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def load_records(
    task: str | registry.TaskId, source: DataSource | None = None, *, cache_only: bool = False
) -> tuple[list[Item], LoadReport]:
    """The items a task scores and the report of what was read, scored, rejected and found by the audit."""
    task_id = registry.parse_task(task) if isinstance(task, str) else task
    source = source or resolve_source()
    if source.kind == "hub":
        items, report = _load_hub(task_id, cache_only=cache_only)
    else:
        items, report = _load_local(task_id, source)
    items = _reworded_across_files(items, report)
    if not items:
        first = f" (first: {report.rejects[0].where}: {report.rejects[0].reason})" if report.rejects else ""
        raise EvalDataError(
            f"{task_id.data_name}: no scorable rows in {source.label}: {len(report.rejects)} rejected{first}"
        )
    REPORTS[task_id.data_name] = report
    return items, report


def _reworded_across_files(items: list[Item], report: LoadReport) -> list[Item]:
    """A task read from several files scores a question once across them: a question that rewords
    (or repeats) one of an earlier file is the audit's reworded_repeat of its own file, counted
    against that file's max_repeated_share. (Within one file the format layer has done this already.)"""
    if len(report.sources) < 2:
        return items
    from bimedix.audit import near_text
    from bimedix.dedup import SearchTooLarge, clusters

    owner = [k for k, sub in enumerate(report.sources) for _ in range(sub.rows_scored)]
    later: dict[int, int] = {}  # item index -> index of the first copy, in another file
    try:
        found = clusters([near_text(item) for item in items])
    except SearchTooLarge as err:  # a task this large is not a benchmark this project scores; say so
        raise EvalDataError(f"{report.sources[0].source} and the task's other files: {err}") from None
    for cluster in found:
        first = cluster.members[0]
        for m in cluster.members[1:]:
            if owner[m] != owner[first]:
                later[m] = first
    if not later:
        return items
    dropped: dict[int, list[int]] = {}
    for m, first in sorted(later.items()):
        sub = report.sources[owner[m]]
        where = f"{report.sources[owner[first]].source}:{items[first].line}"
        sub.rejects.append(Reject(f"{sub.source}:{items[m].line}", f"rewords the question of {where} (audit: reworded_repeat across the task's files)", "reworded_repeat"))  # fmt: skip
        dropped.setdefault(owner[m], []).append(items[m].line)
    for k, lines in dropped.items():
        sub = report.sources[k]
        sub.rows_scored -= len(lines)
        sub.audit["used"] = sub.audit.get("used", 0) - len(lines)
        sub.audit["reworded_repeats"] = sub.audit.get("reworded_repeats", 0) + len(lines)
        sub.audit.setdefault("findings", []).append(
            {"code": "reworded_repeat", "count": len(lines), "rejected": True,
             "at": f"{sub.source}:" + ",".join(map(str, lines[:5])) + (",..." if len(lines) > 5 else ""),
             "message": "rewords a question of an earlier file of the same task: scored once"}
        )  # fmt: skip
    return [item for i, item in enumerate(items) if i not in later]


def gate_problems(report: LoadReport, gate: Gate | None = None) -> list[str]:
    """'file: why' for each source of the report the gate refuses (default: eval_tasks/settings.yaml's limits)."""
    gate = gate or default_gate()
    return [f"{source.source}: {problem}" for source in report.sources for problem in gate.problems(source.audit)]


def refuse(problems: list[str], *, flags: str) -> None:
    """One line for every source the gate refused (EvalDataError), or nothing."""
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EvalDataError(f"{problems[0]}{more}; not scored: fix the data, or raise the limits ({flags})")


@dataclass
class ScoredSet:
    label: str  # sample | hub | the index file
    items: list[tuple[str, Item]]  # (task, item) for every item scored
    files: list[dict]  # per task and source: task, file, sha256, rows, scored, rejected
    sha256: str  # of the items: task, file:line, question, options, gold letter


def scored_set(value: str | None = None, root: str | None = None, *, cache_only: bool = False) -> ScoredSet:
    """Every item the source scores, over all its tasks: what data_prep's build decontaminates against.

    Local sources: the tasks the index lists (its rows / where / ids selections applied); hub: every
    task with a hub source (cache_only: from the local datasets cache, never downloading)."""
    source = resolve_source(value, root)
    if source.kind == "hub":
        names = [t for t in registry.all_tasks() if t in registry.hub_sources()]
    else:
        listed = {e.task for e in read_index(source.index)}
        names = [t for t in registry.all_tasks() if t in listed]
    items: list[tuple[str, Item]] = []
    files: list[dict] = []
    digest = hashlib.sha256()
    for name in names:
        found, report = load_records(name, source, cache_only=cache_only)
        for item in found:
            items.append((name, item))
            digest.update("\x1f".join([name, str(item.line), item.question, *item.options, item.letter or ""]).encode("utf-8", "surrogatepass") + b"\x1e")  # fmt: skip
        for sub in report.sources:
            files.append({"task": name, "file": sub.source, "sha256": sub.sha256, "rows": sub.rows_selected,
                          "scored": sub.rows_scored, "rejected": len(sub.rejects)})  # fmt: skip
    return ScoredSet(source.label, items, files, digest.hexdigest())


def to_docs(items: list[Item], task: registry.TaskId) -> list[dict]:
    """Items -> the lm-eval docs of a bimedix_* task (what utils.doc_to_text and friends read)."""
    return [
        {
            "id": item.id or str(item.line),
            "question": item.question,
            "choices": list(item.options),
            "answer": item.answer,
            "context": item.context,
            "benchmark": task.benchmark,
            "language": task.language,
        }
        for item in items
    ]


def audit_lines(report: LoadReport) -> list[str]:
    """One line per audit finding of the task's sources: `file:line,...: code xN: message`."""
    out = []
    for source in report.sources:
        for finding in source.audit.get("findings", []):
            out.append(f"{finding['at']}: {finding['code']} x{finding['count']}: {finding['message']}")
    return out


_WARNED: set[str] = set()


def warn(message: str) -> None:
    """A line on stderr, once per process (lm-eval loads a task's data more than once)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"bimedix eval_tasks: {message}", file=sys.stderr, flush=True)
