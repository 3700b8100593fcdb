"""The one reader: rows of a local file or a hub dataset, each with the line it starts on.

`iter_rows(kind, source_file)` yields `(line, payload)`. JSON lines stay raw bytes until
`decode(payload)` (data_prep runs it in its worker processes, where it is cheap to
parallelise): invalid JSON or bytes that are not UTF-8 become a Reject for that line (naming
the byte within the line) instead of stopping the run. A whole-file problem (missing file, a
JSON document that does not parse, broken CSV quoting) is a `FormatError` naming file:line.
CSV cells and JSON documents are decoded with surrogateescape, so an undecodable byte rejects
only the row that holds it (the converters check every field).

JSON documents (an MCQ array, PubMedQA's object keyed by PMID) are read whole into memory and
walked item by item, so every item still gets the line it starts on; large inputs should be
JSON lines, which stream.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bimedix.formats.items import FormatError, Reject

READER_KINDS = ("jsonl", "csv", "csv_header", "json", "json_dict")
_WS = re.compile(r"[ \t\n\r]*")
csv.field_size_limit(sys.maxsize)  # PubMedQA-length cells are longer than csv's 128 KiB default


@dataclass(frozen=True)
class SourceFile:
    """One input: a local file, or a dataset that `datasets.load_dataset` can read (hub id or folder)."""

    label: str  # how provenance, rejects and the manifest name it
    path: Path | None = None
    hub: str | None = None
    config: str | None = None
    split: str | None = None

    def check(self) -> None:
        if self.path is not None and not self.path.is_file():
            raise FormatError(f"{self.label}: no such file")


def iter_rows(kind: str, source: SourceFile) -> Iterator[tuple[int, Any]]:
    if source.hub is not None:
        yield from _iter_hub(source)
    elif kind == "jsonl":
        yield from _iter_lines(source)
    elif kind == "csv":
        yield from _iter_csv(source)
    elif kind == "csv_header":
        yield from _iter_csv_header(source)
    elif kind == "json":
        if _first_char(source) == "[":
            yield from _iter_document(source, "[")
        else:
            yield from _iter_lines(source)
    elif kind == "json_dict":
        yield from _iter_document(source, "{")
    else:
        raise FormatError(f"unknown reader kind {kind!r}")


def decode(payload: Any) -> Any:
    """A raw JSON line -> its object (or a Reject); rows already parsed pass through."""
    if not isinstance(payload, bytes):
        return payload
    orjson = _orjson()
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


@functools.cache
def _orjson():
    import orjson  # imported on first use: bimedix stays importable without third-party packages

    return orjson


def _open(source: SourceFile, mode: str = "rb", **kwargs):
    try:
        return open(source.path, mode, **kwargs)
    except FileNotFoundError:
        raise FormatError(f"{source.label}: no such file") from None
    except OSError as err:
        raise FormatError(f"{source.label}: cannot read ({err.strerror})") from None


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
                raise FormatError(f"{source.label}:{reader.line_num}: broken CSV ({err})") from None
            if row:
                yield start, row


def _iter_csv_header(source: SourceFile) -> Iterator[tuple[int, dict]]:
    """A CSV whose first row names the columns (MedArabiQ): rows as {column: cell}."""
    header: list[str] | None = None
    for line, cells in _iter_csv(source):
        if header is None:
            header = [c.strip() for c in cells]
            continue
        if len(cells) != len(header):
            yield line, Reject("column_count", f"{len(cells)} cells; the header names {len(header)} columns")
            continue
        yield line, dict(zip(header, cells, strict=True))


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

    def fail(pos: int, message: str) -> FormatError:
        return FormatError(f"{source.label}:{line_at(pos)}: {message}")

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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _iter_hub(source: SourceFile) -> Iterator[tuple[int, dict]]:
    try:
        import datasets

        dataset = datasets.load_dataset(source.hub, source.config, split=source.split or "train", streaming=True)
        yield from enumerate(dataset, 1)
    except FormatError:
        raise
    except Exception as err:  # network, authentication, unknown dataset: one line, naming it
        raise FormatError(f"{source.label}: cannot stream from the hub ({_first_line(err)})") from None


class NotCached(FormatError):
    """A hub dataset asked for from the local cache only, and not there."""


@contextlib.contextmanager
def _hub_offline():
    """datasets and huggingface_hub read HF_HUB_OFFLINE once, at import; flip their flags for a while."""
    import datasets.config
    import huggingface_hub.constants

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def load_hub(path: str, name: str | None, split: str, *, cache_only: bool = False) -> list[dict]:
    """Every row of a hub dataset (or a local folder `datasets` can read), as dicts.

    cache_only: never touch the network; a dataset that is not in the local datasets cache is a
    `NotCached` error (decontamination uses this, so a build never downloads a test set by surprise).
    """
    import datasets

    label = path + (f" ({name})" if name else "")
    try:
        with _hub_offline() if cache_only else contextlib.nullcontext():
            dataset = datasets.load_dataset(path, name, split=split)
    except Exception as err:  # datasets raises many types (connection, missing split, offline mode)
        if cache_only and not Path(path).exists():
            raise NotCached(
                f"{label} split {split!r} is not in the local datasets cache ({_first_line(err)})"
            ) from None
        raise FormatError(
            f"cannot load {label} split {split!r} from the Hugging Face hub: {_first_line(err)}"
        ) from None
    return [dict(row) for row in dataset]
