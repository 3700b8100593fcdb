"""The evaluation items to decontaminate against: exactly what `make eval` scores.

The build asks eval_tasks (its public entry point `eval_tasks.data.scored_set`) for the items the
same EVAL_DATA setting scores: `sample` (the embedded sample), a folder or index file of local
benchmark files (with its `rows` / `where` / `ids` selections, so only the scored rows count), or
`hub` (read from the local datasets cache only: a build never downloads a test set; a set that is
not cached is a one-line error saying how to fetch it, or to pass --no-decontaminate). Both stages
read the files through bimedix.formats, so a question and its options are the same text on both
sides; the n-grams of question + options (normalised as training text is) go into one NgramIndex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bimedix import arabic
from bimedix.dedup import NgramIndex
from bimedix.formats import Item
from data_prep.records import DataPrepError


@dataclass
class EvalIndex:
    source: str  # the EVAL_DATA it was read from: sample, hub, or the index file
    sha256: str  # of the scored set: every item's task, file:line, question, options and gold letter
    ngram: int
    files: list[dict]  # per task and file: task, file, sha256, rows, scored, rejected
    tasks: list[str]  # the task of every item, by item number
    index: NgramIndex

    def summary(self) -> dict:
        return {
            "eval_data": self.source,
            "sha256": self.sha256,
            "sha256_of": "the scored items (task, file:line, question, options, gold letter), in order",
            "ngram": self.ngram,
            "items": len(self.tasks),
            "ngrams": len(self.index),
            "files": self.files,
        }


def probe_text(item: Item) -> str:
    """What a training record's probe_text is for the same question: question and options, normalised."""
    return "\n".join(arabic.normalise(t) for t in (item.question, *item.options) if t)


def load_eval_index(eval_data: str | None = None, eval_data_root: str | None = None, *, ngram: int = 13) -> EvalIndex:
    """The scored set of EVAL_DATA (see the module docstring) as an n-gram index."""
    from eval_tasks.data import EvalDataError, scored_set  # eval_tasks' public entry point

    try:
        scored = scored_set(eval_data, eval_data_root, cache_only=True)
    except EvalDataError as err:
        raise DataPrepError(f"decontamination: {err}; or build with --no-decontaminate") from None
    return EvalIndex(
        source=scored.label,
        sha256=scored.sha256,
        ngram=ngram,
        files=scored.files,
        tasks=[task for task, _ in scored.items],
        index=NgramIndex([probe_text(item) for _, item in scored.items], n=ngram),
    )


def task_of(index: EvalIndex, items: np.ndarray) -> list[str]:
    return [index.tasks[i] for i in items]
