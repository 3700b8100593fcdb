"""The one reader: rows of a local file or a hub dataset, each with the line it starts on.

`iter_rows(kind, source_file)` yields `(line, payload)`. JSON lines stay raw bytes until
`decode(payload)` (run in the worker processes, where it is cheap to parallelise): invalid
JSON or bytes that are not UTF-8 become a Reject for that line instead of stopping the run.
A whole-file problem (missing file, a JSON document that does not parse, broken CSV quoting)
is a `DataPrepError` naming file:line.

JSON documents (an MCQ array, PubMedQA's object keyed by PMID) are read whole into memory and
walked item by item, so every item still gets the line it starts on; large inputs should be
JSON lines, which stream.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from data_prep.records import DataPrepError, Reject

READER_KINDS = ("jsonl", "csv", "json", "json_dict")
_WS = re.compile(r"[ \t\n\r]*")
csv.field_size_limit(sys.maxsize)  # PubMedQA-length cells are longer than csv's 128 KiB default


@dataclass(frozen=True)
class SourceFile:
    """One input: a local file, or a dataset that `datasets.load_dataset` can stream (hub id or folder)."""

    label: str  # how provenance, rejects and the manifest name it
    path: Path | None = None
    hub: str | None = None
    config: str | None = None
    split: str | None = None

    def check(self) -> None:
        if self.path is not None and not self.path.is_file():
            raise DataPrepError(f"{self.label}: no such file")


def iter_rows(kind: str, source: SourceFile) -> Iterator[tuple[int, Any]]:
    if source.hub is not None:
        yield from _iter_hub(source)
    elif kind == "jsonl":
        yield from _iter_lines(source)
    elif kind == "csv":
        yield from _iter_csv(source)
    elif kind == "json":
        if _first_char(source) == "[":
            yield from _iter_document(source, "[")
        else:
            yield from _iter_lines(source)
    elif kind == "json_dict":
        yield from _iter_document(source, "{")
    else:
        raise DataPrepError(f"unknown reader kind {kind!r}")


def decode(payload: Any) -> Any:
    """A raw JSON line -> its object (or a Reject); rows already parsed pass through."""
    if not isinstance(payload, bytes):
        return payload
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Reject(
                "undecodable", f"not valid UTF-8 (byte {bad.start + 1} of the line is {payload[bad.start]:#04x})"
            )
        return Reject("invalid_json", f"invalid JSON ({err.msg} at character {err.pos + 1} of the line)")


def _open(source: SourceFile, mode: str = "rb", **kwargs):
    try:
        return open(source.path, mode, **kwargs)
    except FileNotFoundError:
        raise DataPrepError(f"{source.label}: no such file") from None
    except OSError as err:
        raise DataPrepError(f"{source.label}: cannot read ({err.strerror})") from None


def _first_char(source: SourceFile) -> str:
    with _open(source) as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    return head[:1].decode("latin-1")


def _iter_lines(source: SourceFile) -> Iterator[tuple[int, bytes]]:
    with _open(source) as fh:
        for number, line in enumerate(fh, 1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if line.isspace() or not line:
                continue  # a blank line is not a row
            yield number, line


def _iter_csv(source: SourceFile) -> Iterator[tuple[int, list[str]]]:
    # surrogateescape keeps undecodable bytes as lone surrogates: the converter rejects that row only
    with _open(source, "r", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise DataPrepError(f"{source.label}:{reader.line_num}: broken CSV ({err})") from None
            if row:
                yield start, row


def _iter_document(source: SourceFile, opener: str) -> Iterator[tuple[int, Any]]:
    with _open(source) as fh:
        text = fh.read().decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    decoder = json.JSONDecoder()
    line, counted = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    def fail(pos: int, message: str) -> DataPrepError:
        return DataPrepError(f"{source.label}:{line_at(pos)}: {message}")

    pos = _WS.match(text, 0).end()
    if pos == len(text):
        return
    closer = {"[": "]", "{": "}"}[opener]
    if text[pos] != opener:
        shape = "a JSON array" if opener == "[" else "one JSON object keyed by id"
        raise fail(pos, f"expected {shape}, found {text[pos]!r}")
    pos = _WS.match(text, pos + 1).end()
    if text.startswith(closer, pos):
        return
    while True:
        try:
            if opener == "{":
                key, pos = decoder.raw_decode(text, pos)
                if not isinstance(key, str):
                    raise fail(pos, "expected a string key")
                pos = _WS.match(text, pos).end()
                if not text.startswith(":", pos):
                    raise fail(pos, "expected ':' after the key")
                pos = _WS.match(text, pos + 1).end()
            start = pos
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise fail(err.pos, f"invalid JSON ({err.msg}); the file is one document, so nothing can be read") from None
        if opener == "{":
            item = {**item, "_key": key} if isinstance(item, dict) else item
        yield line_at(start), item
        pos = _WS.match(text, pos).end()
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
        elif text.startswith(closer, pos):
            if _WS.match(text, pos + 1).end() != len(text):
                raise fail(pos + 1, "unexpected text after the end of the document")
            return
        else:
            raise fail(pos, f"expected ',' or {closer!r}")


def _iter_hub(source: SourceFile) -> Iterator[tuple[int, dict]]:
    try:
        import datasets

        dataset = datasets.load_dataset(source.hub, source.config, split=source.split or "train", streaming=True)
        yield from enumerate(dataset, 1)
    except DataPrepError:
        raise
    except Exception as err:  # network, authentication, unknown dataset: one line, naming it
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataPrepError(f"{source.label}: cannot stream from the hub ({message})") from None
