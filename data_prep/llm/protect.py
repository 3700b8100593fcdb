"""Placeholders for what translation must not touch, and putting it back afterwards.

`Protector.protect(text)` replaces, in this order, line-leading markdown markers (headings,
bullets, numbered items, quotes), the verbatim patterns of protect.yaml (option letters referred
to in the text: "(B)", "A and C"), URLs and inline code, fill-in blanks (a run of three or more
underscores, one placeholder), emphasis markers and table pipes, kept terms and drug names
(protect.yaml), formulas written with a leading count (2CO2, 16ATP), abbreviations (two or more
capitals, or a capital and a digit: ECG, HbA1c, COPD, T4, B12), and numbers with their units
(doses, lab values, vital signs, ranges such as 120/80 mmHg) by ⟦1⟧, ⟦2⟧, ...; the numbering
continues across the segments of one item, so a placeholder moved into another segment is caught.
Every rule matches whole tokens: a number glued to letters (the 2 of CO2, the 10 of q10) or a kept
word inside a longer word is left alone. A kept term written with a capital (Gram, Apgar) matches
that case only, so the unit "gram" is translated; one written in lower case matches any case.
`restore` puts the originals back. Text that already contains the placeholder brackets or the
segment tags cannot be protected safely and raises UnprotectableText.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from data_prep.llm.config import HERE, ConfigError

PROTECT_FILE = HERE / "protect.yaml"
PLACEHOLDER = re.compile(r"⟦(\d+)⟧")
RESERVED = ("⟦", "⟧", "<seg", "</seg>")


class UnprotectableText(ValueError):
    pass


@dataclass
class Protected:
    """One item's placeholder table: number -> original text."""

    originals: dict[int, str] = field(default_factory=dict)

    def add(self, original: str) -> str:
        number = len(self.originals) + 1
        self.originals[number] = original
        return f"⟦{number}⟧"


def placeholders_in(text: str) -> Counter:
    return Counter(int(n) for n in PLACEHOLDER.findall(text))


def restore(text: str, table: Protected) -> str:
    return PLACEHOLDER.sub(lambda m: table.originals.get(int(m.group(1)), m.group(0)), text)


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


class Protector:
    def __init__(
        self,
        units: list[str],
        keep: list[str],
        drug_stems: list[str],
        translate_caps: list[str],
        patterns: list[str] = (),
    ):
        self._patterns = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        number = r"[<>≤≥±~]?\d+(?:[.,]\d+)*"
        unit = rf"(?:\s?(?:{_alternation(units)})(?![\w/]))" if units else ""
        # a whole number (not glued to letters or digits), an optional range or ratio (120/80, 5-10,
        # 2–3), an optional unit
        self._number = re.compile(
            rf"(?<![\w.,]){number}(?:\s?[/\-–]\s?{number}(?![\w.,]|[.,]\d))?(?:{unit}|(?![\w]|[.,]\d))"
        )
        self._url = re.compile(r"https?://\S+|`[^`\n]+`")
        self._markdown_line = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|[-*+][ \t]+|\d+[.)][ \t]+|>[ \t]?)", re.MULTILINE)
        self._blank = re.compile(r"_{3,}")
        self._markdown_inline = re.compile(r"(?<!_)__(?!_)|\*\*|\|")
        self._formula = re.compile(r"(?<![\w-])\d+[A-Z][A-Za-z0-9]*(?![\w-])")
        # Kept terms: lower-case entries match any case; entries with a capital match as written.
        anycase = [w for w in keep if w == w.lower()]
        exact = [w for w in keep if w != w.lower()]
        alternatives = [f"(?i:{_alternation(anycase)})"] if anycase else []
        alternatives += [_alternation(exact)] if exact else []
        self._keep = re.compile(rf"(?<![\w-])(?:{'|'.join(alternatives)})(?![\w-])") if keep else None
        self._stems = (
            re.compile(rf"(?<![\w-])[A-Za-z]{{2,}}(?:{_alternation(drug_stems)})s?(?![\w-])", re.IGNORECASE)
            if drug_stems
            else None
        )
        self._abbreviation = re.compile(r"(?<![\w-])[A-Za-z][A-Za-z0-9]*(?:\+|-)?(?![\w])")
        self._caps = {w.upper() for w in translate_caps}

    @classmethod
    def from_file(cls, path: Path = PROTECT_FILE) -> Protector:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        known = {"units", "keep", "drug_stems", "translate_caps", "patterns"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        lists = {}
        for key in known:
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"{path}: {key} must be a list of non-empty strings")
            lists[key] = [v.strip() for v in value]
        for pattern in lists["patterns"]:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ConfigError(f"{path}: patterns: {pattern!r} is not a valid regular expression ({err})") from None
        return cls(**lists)

    def _is_abbreviation(self, token: str) -> bool:
        core = token.rstrip("+-")
        if core.upper() in self._caps or len(core) < 2:
            return False
        capitals = sum(c.isupper() for c in core)
        digits = sum(c.isdigit() for c in core)
        return capitals >= 2 or (capitals >= 1 and digits >= 1)

    def protect(self, text: str, table: Protected) -> str:
        for reserved in RESERVED:
            if reserved in text:
                raise UnprotectableText(f"text contains {reserved!r}, which the translation format reserves")
        pieces: list[tuple[str, bool]] = [(text, False)]  # (text, protected?)
        # Line markers first, on whole lines; abbreviations before numbers, so HbA1c or T4 stay whole.
        rules = [
            (self._markdown_line, None),  # first: it anchors on line starts, which later splits would fake
            (self._patterns, None),
            (self._url, None),
            (self._blank, None),
            (self._markdown_inline, None),
            (self._keep, None),
            (self._stems, None),
            (self._formula, None),
            (self._abbreviation, self._is_abbreviation),
            (self._number, None),
        ]
        for pattern, accept in rules:
            if pattern is not None:
                pieces = _split(pieces, pattern, accept)
        return "".join(table.add(piece) if protected else piece for piece, protected in pieces)


def _split(pieces, pattern: re.Pattern, accept) -> list[tuple[str, bool]]:
    out = []
    for piece, protected in pieces:
        if protected:
            out.append((piece, True))
            continue
        last = 0
        for match in pattern.finditer(piece):
            if not match.group() or (accept is not None and not accept(match.group())):
                continue
            if match.start() > last:
                out.append((piece[last : match.start()], False))
            out.append((match.group(), True))
            last = match.end()
        if last < len(piece):
            out.append((piece[last:], False))
    return out


@lru_cache(maxsize=1)
def default_protector() -> Protector:
    return Protector.from_file()
