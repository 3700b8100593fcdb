"""Data audits, in one place: what is wrong with a benchmark or training file, with file:line and counts.

Run by `data_prep convert` and `build`, by `eval_tasks check-data` and before every eval run.
Findings per file:

- `duplicate`: a row that repeats an earlier row's question, context and options (after
  `bimedix.arabic.fold`: case, punctuation, diacritics, hamza/alef forms). It is used once: a
  scored task scores the first copy only, a training build keeps the first copy.
- `repeated_question`: a row that repeats an earlier question with OTHER options. Kept (MMLU
  has real pairs such as "Which of the following statements is false?"), and reported; when
  such rows pass `max_repeated_share` of a file, the file is refused (see `gate`).
- `option_counts`: rows with different numbers of options in one file (MedQA's 4- and 5-option
  layouts mixed, say).
- every reject code the readers give (answer not among the options, script that does not match
  the declared language, leaked markup such as `<question>`, missing fields, ...), counted.

`FileAudit.observe` takes keys rather than items, so the data build can feed it the hashes its
worker processes computed; `item_keys(item)` makes those keys from an item.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bimedix.arabic import fold_words

# Prompt scaffolding that leaks into text when an LLM's tagged output is pasted unparsed:
# <question>, </answer>, <a> .. <e>, Arabic letter tags </ب>, [INST], <s>, <|im_start|>.
_MARKUP = re.compile(
    r"</?(?:question|answer|options?|choices?|context|explanation|reasoning|think|[a-e]|[أابجده])ـ?>"
    r"|\[/?INST\]|</?s>|<\|[a-z_]{2,20}\|>",
    re.IGNORECASE,
)
EXAMPLES = 5  # file:line examples kept per finding


def leaked_markup(*texts: str) -> str | None:
    """The first piece of prompt markup in the texts, or None."""
    for value in texts:
        if value and ("<" in value or "[" in value):
            match = _MARKUP.search(value)
            if match:
                return match.group()
    return None


def item_keys(item: Any) -> tuple[str, str]:
    """(duplicate key, question key) of an item. A question: the folded words (bimedix.arabic.fold_words)
    of its question and context, then of its options as a set. A QA pair or a chat (long texts, and
    the build's own dedup folds them): its texts exactly as written."""
    if item.kind == "mcq":
        question = fold_words(item.question) + "\x1f" + fold_words(item.context)
        return question + "\x1d" + "\x1e".join(sorted(fold_words(o) for o in item.options)), question
    texts = [m["content"] for m in item.messages] if item.kind == "chat" else [item.context, item.answer_text]
    return item.question + "\x1d" + "\x1e".join(texts), item.question


@dataclass
class Finding:
    code: str
    count: int
    lines: list[int]  # the first EXAMPLES lines
    message: str
    reject: bool  # the rows were not used (True) or kept and reported (False)

    def where(self, label: str) -> str:
        """file:3,17,40 (the first lines; '...' when there are more)."""
        return f"{label}:" + ",".join(map(str, self.lines)) + (",..." if self.count > len(self.lines) else "")

    def to_dict(self, label: str) -> dict:
        return {
            "code": self.code,
            "count": self.count,
            "rejected": self.reject,
            "at": self.where(label),
            "message": self.message,
        }


@dataclass
class FileAudit:
    """The audit of one file (or one hub split): feed every row, then read `findings()`."""

    label: str
    mixed_options_ok: bool = False  # the reader declared several option counts (MedArabiQ: 4 or 5)
    rows: int = 0
    kept: int = 0
    _first: dict = field(default_factory=dict)  # duplicate key -> first line
    _questions: dict = field(default_factory=dict)  # question key -> (first line, text)
    _repeats: Counter = field(default_factory=Counter)  # question key -> rows repeating it with other options
    _repeat_lines: list = field(default_factory=list)
    _duplicate_lines: list = field(default_factory=list)
    _options: Counter = field(default_factory=Counter)  # option count -> rows
    _first_with: dict = field(default_factory=dict)  # option count -> first line
    _rejects: Counter = field(default_factory=Counter)  # code -> rows
    _reject_lines: dict = field(default_factory=dict)  # code -> first lines
    _reject_reason: dict = field(default_factory=dict)  # code -> first reason

    def observe(self, line: int, key: Any, question_key: Any, options: int, question: str = "") -> int | None:
        """A usable row. Returns the line of the row it duplicates (it must not be used), or None."""
        self.rows += 1
        first = self._first.get(key)
        if first is not None:
            self._duplicate_lines.append(line)
            return first
        self._first[key] = line
        self.kept += 1
        if options:
            self._options[options] += 1
            self._first_with.setdefault(options, line)
        seen = self._questions.get(question_key)
        if seen is None:
            self._questions[question_key] = (line, question)
        else:
            self._repeats[question_key] += 1
            self._repeat_lines.append(line)
        return None

    def observe_item(self, item: Any) -> int | None:
        key, question_key = item_keys(item)
        return self.observe(item.line, key, question_key, len(item.options) if item.kind == "mcq" else 0, item.question)

    def reject(self, line: int, code: str, reason: str = "") -> None:
        self.rows += 1
        self._rejects[code] += 1
        lines = self._reject_lines.setdefault(code, [])
        if len(lines) < EXAMPLES:
            lines.append(line)
        self._reject_reason.setdefault(code, reason)

    # -- results

    @property
    def duplicates(self) -> int:
        return len(self._duplicate_lines)

    @property
    def repeated(self) -> int:
        return sum(self._repeats.values())

    @property
    def rejected(self) -> int:
        """Rows not used: rejects and duplicates."""
        return sum(self._rejects.values()) + self.duplicates

    def most_repeated(self) -> tuple[str, int] | None:
        """(the question text, rows that carry it) of the question repeated most often with other options."""
        if not self._repeats:
            return None
        key, extra = self._repeats.most_common(1)[0]
        line, question = self._questions[key]
        return (" ".join(question.split())[:80] or f"the question of line {line}"), extra + 1

    def findings(self) -> list[Finding]:
        out = []
        for code, count in sorted(self._rejects.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(Finding(code, count, self._reject_lines[code], self._reject_reason[code], True))
        if self._duplicate_lines:
            out.append(
                Finding(
                    "duplicate",
                    self.duplicates,
                    self._duplicate_lines[:EXAMPLES],
                    "repeats an earlier row's question and options: used once",
                    True,
                )
            )
        if self._repeats:
            shown, copies = self.most_repeated()
            out.append(
                Finding(
                    "repeated_question",
                    self.repeated,
                    self._repeat_lines[:EXAMPLES],
                    f"repeats an earlier question with other options (most often: {shown!r} in {copies} rows)",
                    False,
                )
            )
        if len(self._options) > 1 and not self.mixed_options_ok:
            counts = ", ".join(
                f"{n} options in {rows} rows (first: line {self._first_with[n]})"
                for n, rows in sorted(self._options.items())
            )
            minority = min(self._options, key=lambda n: (self._options[n], n))
            out.append(
                Finding(
                    "option_counts",
                    self._options[minority],
                    [self._first_with[minority]],
                    f"option counts differ: {counts}",
                    False,
                )
            )
        return out

    def option_counts(self) -> dict[int, int]:
        return dict(sorted(self._options.items()))

    def to_dict(self) -> dict:
        return {
            "file": self.label,
            "rows": self.rows,
            "used": self.kept,
            "rejected": self.rejected,
            "repeated_questions": self.repeated,
            "most_repeated": list(self.most_repeated() or ("", 0)),
            "option_counts": {str(k): v for k, v in self.option_counts().items()},
            "findings": [f.to_dict(self.label) for f in self.findings()],
        }

    def lines(self) -> list[str]:
        """One line per finding: `file:line[, file:line ...]: code xN: message`."""
        return [f"{f.where(self.label)}: {f.code} x{f.count}: {f.message}" for f in self.findings()]


@dataclass(frozen=True)
class Gate:
    """When a file is refused: too many of its rows unusable, or too many repeating another's question.
    The limits are settings of each stage (data_prep/settings.yaml, eval_tasks/settings.yaml)."""

    max_rejected_share: float
    max_repeated_share: float

    def problems(self, audit: FileAudit | dict) -> list[str]:
        """One phrase per limit passed (empty: the file may be used). Takes a FileAudit or its to_dict()."""
        summary = audit.to_dict() if isinstance(audit, FileAudit) else audit
        rows, rejected, repeated = summary["rows"], summary["rejected"], summary["repeated_questions"]
        codes = [(f["code"], f["count"], f["message"]) for f in summary["findings"] if f["rejected"]]
        if not rows:
            return []
        if summary["used"] == 0:
            code, count, message = max(codes, key=lambda c: c[1])
            return [f"nothing usable: all {rows} rows rejected (mostly {code}, {count} rows: {message})"]
        out = []
        if rejected / rows > self.max_rejected_share:
            shown = ", ".join(f"{code} {count}" for code, count, _ in sorted(codes, key=lambda c: -c[1]))
            out.append(
                f"{rejected} of {rows} rows rejected ({rejected / rows:.1%}, above the limit "
                f"{self.max_rejected_share:.0%}): {shown}"
            )
        if repeated / rows > self.max_repeated_share:
            text, copies = summary["most_repeated"]
            out.append(
                f"{repeated} of {rows} rows repeat an earlier question with other options ({repeated / rows:.1%}, "
                f"above the limit {self.max_repeated_share:.0%}; {text[:60]!r} is in {copies} rows)"
            )
        return out
