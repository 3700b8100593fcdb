"""The one record schema every source converts into, and the row written for Axolotl.

A source's converter (data_prep/sources.py, on top of bimedix.formats) returns a `Record` (in
memory) or a `Reject` (the format layer's: a code and a one-line reason). The build adds the parts that depend
on the run (source name, split, provenance) and writes `output_row(...)`: every row of every
output file has exactly the keys of OUTPUT_KEYS with the same JSON types, because
`datasets.load_dataset("json")` (what Axolotl uses) infers one Arrow schema per file. Anything
whose shape varies (options, labels, source ids) goes into `metadata`, a JSON-encoded string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from bimedix.formats import FormatError, Reject

__all__ = [
    "LANGUAGES",
    "OUTPUT_KEYS",
    "SPLITS",
    "TASKS",
    "DataPrepError",
    "Record",
    "Reject",
    "output_row",
    "record_id",
]

TASKS = ("mcqa", "qa", "chat")
LANGUAGES = ("en", "ar")
SPLITS = ("train", "val")
OUTPUT_KEYS = ("id", "source", "format", "language", "task", "split", "messages", "metadata", "provenance")


# A problem the user must fix (missing file, unknown format, bad mix, a broken source file...): one
# line, no traceback. The format layer's error type, so a reader's error and ours are caught alike.
DataPrepError = FormatError


@dataclass(slots=True)
class Record:
    task: str  # "mcqa" | "qa" | "chat"
    language: str  # "en" | "ar" (detected from the script of the question)
    messages: list[dict[str, str]]  # [{role, content}]: optional system, then user/assistant turns
    probe_text: str  # compared with evaluation items for decontamination: question + options (user turns)
    extra_text: str  # compared for duplicates after probe_text: context, answers, assistant turns
    metadata: dict[str, Any] = field(default_factory=dict)  # options, label, subject, source id...
    # The structured texts (question, context, explanation / answer) for stages that work field by
    # field, such as the LLM translation stage; never written to the output.
    parts: dict[str, str] = field(default_factory=dict)
    # bimedix.audit.item_keys of the item (duplicate key, question key): the build's audit counts
    # repeated questions per file from their hashes.
    audit_keys: tuple[str, str] = ("", "")


def record_id(messages: list[dict[str, str]]) -> str:
    """Stable content hash of the conversation: same messages, same id, in every run and process."""
    return xxhash.xxh3_128_hexdigest(orjson.dumps(messages))


def output_row(record: Record, *, id: str, source: str, format: str, split: str, file: str, line: int) -> dict:
    """The JSON object written for one record; keys and types are the same for every row."""
    return {
        "id": id,
        "source": source,
        "format": format,
        "language": record.language,
        "task": record.task,
        "split": split,
        "messages": record.messages,
        "metadata": orjson.dumps(record.metadata, option=orjson.OPT_SORT_KEYS).decode(),
        "provenance": {"file": file, "line": line},
    }
