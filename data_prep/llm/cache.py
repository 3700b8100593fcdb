"""A content-addressed cache of finished completions: SQLite in WAL mode, one row per call.

The key is the sha256 of the endpoint (base URL and model), the messages and the sampling
parameters, written as canonical JSON. A row is committed the moment its response has been read
and parsed, before the caller sees it, so a run killed with SIGKILL loses no finished call: the
next run finds it here and does not pay for it again. `synchronous=NORMAL` in WAL mode keeps
every committed row across a killed process (an OS crash or power cut may lose the last ones).
Several processes may share one cache file (WAL: readers never block; writers wait their turn).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    request TEXT NOT NULL,
    content TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    created REAL NOT NULL
)
"""


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def cache_key(scope: str, messages: list[dict], params: dict) -> str:
    """sha256 of (endpoint base URL + model, messages, sampling parameters)."""
    payload = canonical_json({"endpoint": scope, "messages": messages, "params": params})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedCompletion:
    content: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


class Cache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path}: not a usable cache database ({err})") from None

    def get(self, key: str) -> CachedCompletion | None:
        row = self._db.execute(
            "SELECT content, finish_reason, prompt_tokens, completion_tokens FROM completions WHERE key = ?", (key,)
        ).fetchone()
        return CachedCompletion(*row) if row else None

    def put(self, key: str, scope: str, request: dict, completion: CachedCompletion) -> None:
        # Autocommit: the row is durable when execute returns. A row already there is kept (same key,
        # same request: the first finished answer stays the answer, so re-runs are reproducible).
        self._db.execute(
            "INSERT OR IGNORE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                scope,
                canonical_json(request),
                completion.content,
                completion.finish_reason,
                completion.prompt_tokens,
                completion.completion_tokens,
                time.time(),
            ),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM completions")}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
