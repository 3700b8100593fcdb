"""The evaluation items to decontaminate against, read from eval_tasks' index with our converters.

The index is a YAML list of `{task, language, path, format}` (path relative to the index's
folder, format one of the SOURCES names), with eval_tasks' optional keys: `cop_base` is used;
`rows`, `where` and `ids` (which select the test rows inside a file) are not, so the whole file
is decontaminated against, a superset of what is scored. Each file is read with the same reader and converter
as training data, so a question and its options are extracted identically on both sides; the
n-grams of `Record.probe_text` (question + options) go into one `NgramIndex`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.config import display, from_mapping, load_yaml
from data_prep.dedup import NgramIndex
from data_prep.readers import SourceFile, decode, iter_rows
from data_prep.records import LANGUAGES, DataPrepError, Reject
from data_prep.sources import SourceContext, get_format


@dataclass(frozen=True)
class EvalEntry:
    task: str
    language: str
    path: str
    format: str
    cop_base: int | None = None
    rows: tuple[int, ...] | None = None
    where: dict[str, str] | None = None
    ids: str | None = None


@dataclass
class EvalIndex:
    path: str
    sha256: str
    ngram: int
    entries: list[dict]  # per entry: task, language, format, file, sha256, items, rejected, reject_codes
    tasks: list[str]  # the task of every item, by item number
    index: NgramIndex

    def summary(self) -> dict:
        return {
            "index": self.path,
            "sha256": self.sha256,
            "ngram": self.ngram,
            "items": len(self.tasks),
            "ngrams": len(self.index),
            "files": self.entries,
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def missing_index_message(path: Path) -> str:
    return (
        f"{display(path)}: evaluation index not found (needed to decontaminate); point --eval-index "
        "or BIMEDIX_EVAL_INDEX at one, or pass --no-decontaminate to build without decontamination"
    )


def load_eval_index(path: Path, *, ngram: int = 13, min_arabic_share: float = 0.3) -> EvalIndex:
    if not path.is_file():
        raise DataPrepError(missing_index_message(path))
    where = display(path)
    data = load_yaml(path)
    if not isinstance(data, list) or not data:
        raise DataPrepError(f"{where}: expected a non-empty YAML list of {{task, language, path, format}}")
    texts, tasks, entries = [], [], []
    for i, raw in enumerate(data):
        entry = from_mapping(EvalEntry, raw, f"{where}[{i}]")
        if entry.language not in LANGUAGES:
            raise DataPrepError(f"{where}[{i}]: language must be one of {', '.join(LANGUAGES)}")
        try:
            fmt = get_format(entry.format)
        except DataPrepError as err:
            raise DataPrepError(f"{where}[{i}]: {err}") from None
        source = SourceFile(display(path.parent / entry.path), path=path.parent / entry.path)
        source.check()
        rows = [(line, decode(payload)) for line, payload in iter_rows(fmt.reader, source)]
        params = {}
        if fmt.probe is not None:
            # Only the question and options are compared, never the label: an undecided base will do.
            declared = {"cop_base": entry.cop_base, "undecided_base": 1}
            try:
                params = fmt.probe((row for _, row in rows), declared)
            except DataPrepError as err:
                raise DataPrepError(f"{source.label}: {err}") from None
        # language=None: an item is compared whatever its script, so nothing escapes decontamination
        ctx = SourceContext(source=entry.task, params=params, min_arabic_share=min_arabic_share)
        codes: Counter[str] = Counter()
        items = 0
        for _, row in rows:
            result = row if isinstance(row, Reject) else fmt.convert(row, ctx)
            if isinstance(result, Reject):
                codes[result.code] += 1
                continue
            texts.append(result.probe_text)
            tasks.append(entry.task)
            items += 1
        entries.append(
            {
                "task": entry.task,
                "language": entry.language,
                "format": entry.format,
                "file": source.label,
                "sha256": sha256_file(source.path),
                "items": items,
                "rejected": sum(codes.values()),
                "reject_codes": dict(sorted(codes.items())),
            }
        )
    return EvalIndex(
        path=where,
        sha256=sha256_file(path),
        ngram=ngram,
        entries=entries,
        tasks=tasks,
        index=NgramIndex(texts, n=ngram),
    )


def task_of(index: EvalIndex, items: np.ndarray) -> list[str]:
    return [index.tasks[i] for i in items]
