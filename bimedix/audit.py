"""Data audits, in one place: what is wrong with a benchmark or training file, with file:line and counts.

Run by `data_prep convert` and `build`, by `eval_tasks check-data` and before every eval run.
Findings per file:

- `duplicate`: a row that repeats an earlier row's question, context and options (after
  `bimedix.arabic.fold`: case, punctuation, diacritics, hamza/alef forms). It is used once: a
  scored task scores the first copy only, a training build keeps the first copy.
- `repeated_question`: a row that repeats an earlier question with OTHER options. Kept (MMLU
  has real pairs such as "Which of the following statements is false?"), and reported; when
  such rows pass `max_repeated_share` of a file, the file is refused (see `gate`).
- `reworded_repeat`: a question that rewords an earlier one of the same file: the canonical words
  of question, context and options agree at Jaccard similarity `bimedix.dedup.REWORDED` (0.4) or
  more, through a chain of such pairs (found by MinHash LSH, checked exactly; bimedix/dedup.py). It
  is used once, as a duplicate is: the first row of each cluster is scored or trained on, the later
  ones not; they count toward `max_repeated_share` with the exact repeats (see `gate`).
- `off_topic_cluster`: a cluster of OFF_TOPIC (10) or more reworded copies in one file. One
  question that recurs that often within one subject is a scraping or templating accident (the
  Arabic MMLU files repeat a question about IP-address spoofing 6 to 157 times each), not an exam.
- `reworded_not_audited`: a file too large for the reworded-repeat search (more candidate pairs
  than `bimedix.dedup.PAIR_LIMIT`, which a file of a few 10^4 short questions reaches: the
  candidates grow with the square of the rows). Reported, not refused: its exact repeats are
  still found, and a training build's own near-duplicate pass still runs.
- `option_counts`: rows with different numbers of options in one file (MedQA's 4- and 5-option
  layouts mixed, say).
- every reject code the readers give (answer not among the options, script that does not match
  the declared language, leaked markup such as `<question>`, missing fields, ...), counted.

`FileAudit.observe` takes keys rather than items, so the data build can feed it the hashes its
worker processes computed; `item_keys(item)` makes those keys from an item, `near_text(item)` the
text the reworded-repeat audit compares.
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
# A cluster of this many reworded copies in one file is reported as off-topic filler. From the data:
# the IP-spoofing filler of the Arabic MMLU files forms clusters of 6 to 157 rows per file, while the
# rewordings a real exam carries come in pairs; 10 reports every filler cluster of 10 rows or more.
OFF_TOPIC = 10


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


def near_text(item: Any) -> str:
    """What the reworded-repeat audit compares: a question's text, context and options (MCQ only)."""
    return "\n".join([item.question, item.context, *item.options]) if item.kind == "mcq" else ""


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
    _repeat_lines: list = field(default_factory=list)  # (line, question key, kept index) of rows repeating a question
    _duplicate_lines: list = field(default_factory=list)
    _options: Counter = field(default_factory=Counter)  # option count -> rows
    _first_with: dict = field(default_factory=dict)  # option count -> first line
    _near: list = field(default_factory=list)  # (line, text, kept index) of kept questions, for the rewording audit
    _not_audited: str = ""  # why the rewording audit could not run (too large a search), if so
    _clusters: list | None = None  # [(lines, kept indices, similarity, sample)], computed once by reworded()
    _rejects: Counter = field(default_factory=Counter)  # code -> rows
    _reject_lines: dict = field(default_factory=dict)  # code -> first lines
    _reject_reason: dict = field(default_factory=dict)  # code -> first reason

    def observe(
        self, line: int, key: Any, question_key: Any, options: int, question: str = "", near: str = ""
    ) -> int | None:
        """A usable row. Returns the line of the row it duplicates (it must not be used), or None.
        `near`: the text the reworded-repeat audit compares (empty: the row is not compared)."""
        self.rows += 1
        first = self._first.get(key)
        if first is not None:
            self._duplicate_lines.append(line)
            return first
        self._first[key] = line
        self.kept += 1
        if near:
            self._near.append((line, near, self.kept - 1))
            self._clusters = None
        if options:
            self._options[options] += 1
            self._first_with.setdefault(options, line)
        seen = self._questions.get(question_key)
        if seen is None:
            self._questions[question_key] = (line, question)
        else:
            self._repeat_lines.append((line, question_key, self.kept - 1))
        return None

    def observe_item(self, item: Any) -> int | None:
        key, question_key = item_keys(item)
        count = len(item.options) if item.kind == "mcq" else 0
        return self.observe(item.line, key, question_key, count, item.question, near_text(item))

    def _reworded(self) -> list[tuple[list[int], list[int], float, str]]:
        if self._clusters is None:
            from bimedix.dedup import SearchTooLarge, clusters  # numpy: imported when a file is audited

            texts = [text for _, text, _ in self._near]
            self._not_audited = ""
            try:
                found = clusters(texts)
            except SearchTooLarge as err:  # reported as a finding (`reworded_not_audited`), never silent
                found, self._not_audited = [], str(err)
            self._clusters = [
                (
                    [self._near[i][0] for i in c.members],
                    [self._near[i][2] for i in c.members],
                    c.similarity,
                    " ".join(texts[c.members[0]].split())[:80],
                )
                for c in found
            ]
        return self._clusters

    def reworded(self) -> list[tuple[list[int], float, str]]:
        """The clusters of reworded repeats: (their lines, first first; the weakest similarity that
        joined them; the first one's text, shortened), in file order."""
        return [(lines, similarity, sample) for lines, _, similarity, sample in self._reworded()]

    def reworded_rows(self) -> dict[int, int]:
        """{kept index of a later reworded copy (the n-th row `observe` kept, from 0): line of its
        cluster's first row}: rows that must not be used."""
        return {k: lines[0] for lines, kept, _, _ in self._reworded() for k in kept[1:]}

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

    def _exact_repeats(self) -> list[tuple[int, Any]]:
        """Rows repeating an earlier question with other options, unless already a reworded copy."""
        later = self.reworded_rows() if self._near else {}
        return [(line, key) for line, key, kept in self._repeat_lines if kept not in later]

    @property
    def repeated(self) -> int:
        """Exact repeats of a question with other options (kept, reported)."""
        return len(self._exact_repeats())

    @property
    def reworded_count(self) -> int:
        """Later copies in clusters of reworded repeats (not used)."""
        return sum(len(lines) - 1 for lines, _, _ in self.reworded()) if self._near else 0

    @property
    def used(self) -> int:
        return self.kept - self.reworded_count

    @property
    def rejected(self) -> int:
        """Rows not used: rejects and duplicates (reworded copies count as repeats, see `gate`)."""
        return sum(self._rejects.values()) + self.duplicates

    def most_repeated(self) -> tuple[str, int] | None:
        """(the question text, rows that carry it) of the question repeated most often: with other
        options, or reworded (the larger)."""
        exact = Counter(key for _, key in self._exact_repeats())
        best = None
        if exact:
            key, extra = exact.most_common(1)[0]
            line, question = self._questions[key]
            best = (" ".join(question.split())[:80] or f"the question of line {line}"), extra + 1
        clusters = self.reworded() if self._near else []
        if clusters:
            lines, _, sample = max(clusters, key=lambda c: len(c[0]))
            if best is None or len(lines) > best[1]:
                best = sample, len(lines)
        return best

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
        exact = self._exact_repeats()
        if exact:
            counts = Counter(key for _, key in exact)
            key, extra = counts.most_common(1)[0]
            shown = " ".join(self._questions[key][1].split())[:80]
            out.append(
                Finding(
                    "repeated_question",
                    len(exact),
                    [line for line, _ in exact[:EXAMPLES]],
                    f"repeats an earlier question with other options (most often: {shown!r} in {extra + 1} rows)",
                    False,
                )
            )
        clusters = self.reworded() if self._near else []
        if clusters:
            later = sorted(line for lines, _, _ in clusters for line in lines[1:])
            lines, similarity, sample = max(clusters, key=lambda c: len(c[0]))
            out.append(
                Finding(
                    "reworded_repeat",
                    len(later),
                    later[:EXAMPLES],
                    f"rewords an earlier question of the file ({len(clusters)} cluster(s); the largest: "
                    f"{len(lines)} rows from line {lines[0]}, {sample!r}, words alike >= {similarity:.2f}): "
                    "used once",
                    True,
                )
            )
        if self._not_audited:
            out.append(
                Finding(
                    "reworded_not_audited",
                    len(self._near),
                    [self._near[0][0]],
                    f"reworded repeats were not looked for ({self._not_audited}); exact repeats were",
                    False,
                )
            )
        for lines, _, sample in clusters:
            if len(lines) >= OFF_TOPIC:
                out.append(
                    Finding(
                        "off_topic_cluster",
                        len(lines),
                        lines[:EXAMPLES],
                        f"{len(lines)} reworded copies of one question in one file ({sample!r}, lines "
                        f"{lines[0]}..{lines[-1]}): a scraping or templating accident, not an exam; used once",
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
            "used": self.used,
            "rejected": self.rejected,
            "repeated_questions": self.repeated,
            "reworded_repeats": self.reworded_count,
            "reworded_clusters": [
                {"size": len(lines), "lines": lines, "similarity": round(similarity, 3), "sample": sample}
                for lines, similarity, sample in (self.reworded() if self._near else [])
            ],
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
        rows, rejected = summary["rows"], summary["rejected"]
        reworded = summary.get("reworded_repeats", 0)
        repeated = summary["repeated_questions"] + reworded
        codes = [(f["code"], f["count"], f["message"]) for f in summary["findings"] if f["rejected"]]
        if not rows:
            return []
        if summary["used"] == 0:
            code, count, message = max(codes, key=lambda c: c[1])
            return [f"nothing usable: all {rows} rows rejected (mostly {code}, {count} rows: {message})"]
        out = []
        if rejected / rows > self.max_rejected_share:
            counted = [c for c in codes if c[0] != "reworded_repeat"]  # a reworded copy counts as a repeat
            shown = ", ".join(f"{code} {count}" for code, count, _ in sorted(counted, key=lambda c: -c[1]))
            out.append(
                f"{rejected} of {rows} rows rejected ({rejected / rows:.1%}, above the limit "
                f"{self.max_rejected_share:.0%}): {shown}"
            )
        if repeated / rows > self.max_repeated_share:
            text, copies = summary["most_repeated"]
            out.append(
                f"{repeated} of {rows} rows repeat an earlier question with other options"
                + (f" or reword one ({reworded} rows)" if reworded else "")
                + f" ({repeated / rows:.1%}, "
                f"above the limit {self.max_repeated_share:.0%}; {text[:60]!r} is in {copies} rows)"
            )
        return out
