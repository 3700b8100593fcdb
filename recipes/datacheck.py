"""Check the training data a recipe names before training starts: every line a JSON object
whose `messages` the project's chat template accepts (an optional first system message, then
user/assistant turns alternating, ending with an assistant turn, every content a non-empty
string). A problem is reported as `file:line: field: what is wrong`.

The data stage writes and checks these files; this guard only makes sure a GPU run does not
start on a file that would fail (or silently train on nothing) hours later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from recipes.config import rel

MAX_REPORTED = 20


def row_problems(row: object) -> Iterator[str]:
    if not isinstance(row, dict):
        yield f"expected a JSON object, got {type(row).__name__}"
        return
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        yield "messages: missing or empty (expected a list of {role, content})"
        return
    turns = messages[1:] if isinstance(messages[0], dict) and messages[0].get("role") == "system" else messages
    offset = len(messages) - len(turns)
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            yield f"messages[{index}]: expected an object with role and content"
            return
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            yield f"messages[{index}].content: missing or empty"
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected:
            yield f"messages[{index + offset}].role: expected {expected!r}, got {message.get('role')!r}"
            return
    if not turns or turns[-1].get("role") != "assistant":
        yield "messages: the last turn must be the assistant's (nothing to train on otherwise)"


def check_file(path: Path) -> tuple[int, list[str]]:
    """(rows, problems) of one messages JSON-lines file; at most MAX_REPORTED problems are listed."""
    shown = rel(path)
    if not path.is_file():
        return 0, [f"{shown}: no such file"]
    problems: list[str] = []
    rows = bad = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            rows += 1
            try:
                found = list(row_problems(json.loads(raw.decode("utf-8"))))
            except UnicodeDecodeError:
                found = ["not valid UTF-8"]
            except json.JSONDecodeError as err:
                found = [f"not valid JSON ({err.msg}, column {err.colno})"]
            if found:
                bad += 1
                if len(problems) < MAX_REPORTED:
                    problems.append(f"{shown}:{number}: {found[0]}")
    if bad > len(problems):
        problems.append(f"{shown}: {bad - len(problems)} more bad lines not shown ({bad} of {rows})")
    if rows == 0:
        problems.append(f"{shown}: no rows")
    return rows, problems
