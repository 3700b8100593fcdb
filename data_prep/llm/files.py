"""Atomic file writing for the run folders: a file is either its old version or its complete new one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def json_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n"


@contextlib.contextmanager
def atomic_writer(path: Path, newline: str | None = None) -> Iterator:
    """Open a temporary file beside `path`; on success it replaces `path` (fsynced), on error it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files a killed run left behind (they never replaced a real file)."""
    removed = 0
    for path in Path(directory).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    count = 0
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(json_line(row))
            count += 1
    return count


def write_json(path: Path, value) -> None:
    with atomic_writer(path) as handle:
        json.dump(value, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` only when it differs from what is there (re-running changes nothing, not even mtime)."""
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    with atomic_writer(path) as handle:
        handle.write(text)
    return True


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
