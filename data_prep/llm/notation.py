"""What in a translation is notation rather than prose, and numbers as values: the helpers of the checks.

Measured on real English->Arabic medical translations (data_prep/llm/README.md, "Calibration"), the
checks must not count as untranslated English:
- a Latin gloss in parentheses after an Arabic term: "التنفس الزائد (Hyperventilation)";
- Roman numerals ("I و III"), single Latin letters (variables, chromosomes: "45، X"), sex
  chromosomes ("47، XY، +13"), Greek letters (β, µ), chunks written with digits (formulas and
  karyotypes: "2CO2", "46،XX،der(14؛21)(q10؛q10)"), and in an equation (a text with "=") the short
  function names ("a = g sin θ");
and must not count as a changed number:
- the Arabic comma as a thousands or list separator ("10،000", "1،6"), a space as thousands separator
  ("10 000"), "1.0" for "1", ".10" for "0.10", digits inside formulas and abbreviations ("CO2", "C4");
- the numbers 0 to 10 written as words on the other side ("1 minute" = "دقيقة واحدة"; "Stage 1" =
  "المرحلة الأولى"; numerals.yaml lists the words).
It also counts sentences (the sentences check): an English "e.g." or "Vitamin K." and an Arabic
"E. coli" end none, and ". . ." alone is no sentence.

Everything here only decides checks; nothing rewrites what is written to an output file. The
script and digit primitives come from text.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import regex
import yaml

from data_prep.llm.config import HERE, ConfigError
from data_prep.llm.protect import PLACEHOLDER
from data_prep.llm.text import arabic_ratio, ascii_digits, latin_runs, match_form, strip_bidi

NUMERALS_FILE = HERE / "numerals.yaml"

_GAP = " | "  # what blanked notation becomes: a separator, so Latin runs stop there
_ARABIC_LETTER = regex.compile(r"[\p{Script=Arabic}&&\p{L}]", flags=regex.V1)
_LATIN_LETTER = regex.compile(r"\p{Script=Latin}")
# A parenthesised span with no Arabic letter and at least one Latin letter.
_PARENTHESES = regex.compile(r"\(([^()\p{Script=Arabic}]*\p{Script=Latin}[^()\p{Script=Arabic}]*)\)")
_ROMAN = regex.compile(r"(?<![\p{L}\p{N}])(?:X{1,3}(?:IX|IV|V?I{0,3})|IX|IV|V?I{1,3}|V)(?![\p{L}\p{N}])")
_SINGLE_LETTER = regex.compile(r"(?<!\p{L})\p{Script=Latin}(?!\p{L})")
# Sex chromosomes in a karyotype written with spaces ("47، XY، +13"), Greek letters and the micro sign.
_CHROMOSOMES = regex.compile(r"(?<![\p{L}\p{N}])[XY]{2,4}(?![\p{L}\p{N}])")
_SYMBOLS = regex.compile(r"[\p{Script=Greek}\u00b5]")
# Chunks between spaces, hyphens, dashes and slashes; one holding a digit is notation.
_CHUNK = regex.compile(r"[^\s\-–—/]+")
_DIGIT = regex.compile(r"\p{Nd}")
_SHORT_LATIN = regex.compile(r"(?<!\p{L})\p{Script=Latin}{1,3}(?!\p{L})")

# Numbers. Separators: the Arabic comma between digits (no space) is a comma, "1، 2" is a list as
# "1, 2" is; a space (or a thin or no-break space) between a 1-3 digit group and 3-digit groups is a
# thousands separator.
_ARABIC_COMMA = regex.compile(r"(?<=\d)،(?=\d)")
_SPACE_THOUSANDS = regex.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d.,])")
_NUMBER = regex.compile(r"(?<![\d.,])(?:\d+(?:[.,]\d+)*|(?<![\p{L}\p{N}])\.\d+)")
_THOUSANDS = regex.compile(r"^\d{1,3}(?:,\d{3})+$")
_WORD = regex.compile(r"[\p{L}\p{M}]+")
# Sentence ends: English . ! ? before a space and a capital, a digit or an opening quote (not after
# an initial or a common abbreviation); Arabic . ! ? ؟ before a space (not after a Latin initial:
# "E. coli"). A piece with no letter or digit (". . .") is not a sentence.
_ENGLISH_END = regex.compile(
    r"(?<!\b(?:[A-Z]|e\.g|i\.e|vs|Dr|Mr|Mrs|Ms|St|al|approx|Fig|No))[.!?…]+[\"”’')\]]*(?=\s+[\"“'(\[]?[A-Z0-9])"
)
_ARABIC_END = regex.compile(r"(?<!(?<!\p{L})\p{Script=Latin})[.!?؟…]+[\"”’')\]»]*(?=\s+\S)")
_CONTENT = regex.compile(r"[\p{L}\p{N}]")


def prose(text: str, single_letters: bool = False) -> str:
    """`text` with placeholders and notation blanked: what the script checks should read as prose.

    Blanked: placeholders ⟦n⟧; a parenthesised Latin span after Arabic text (a gloss); in an
    equation, Latin runs of up to three letters; chunks that hold a digit (their Latin letters);
    Roman numerals; sex chromosomes (XX, XYY); Greek letters and µ; single Latin letters, unless
    `single_letters` (a run of English words counts its "a" and "I").
    """
    text = PLACEHOLDER.sub(_GAP, text)

    def gloss(match: regex.Match) -> str:
        before = text[: match.start()]
        return _GAP if _ARABIC_LETTER.search(before) else match.group(0)

    text = _PARENTHESES.sub(gloss, text)
    if "=" in text:
        text = _SHORT_LATIN.sub(_GAP, text)
    text = _CHUNK.sub(lambda m: _LATIN_LETTER.sub("", m.group(0)) if _DIGIT.search(m.group(0)) else m.group(0), text)
    text = _ROMAN.sub(_GAP, text)
    text = _CHROMOSOMES.sub(_GAP, text)
    text = _SYMBOLS.sub(_GAP, text)
    return text if single_letters else _SINGLE_LETTER.sub(_GAP, text)


def arabic_share(text: str) -> float:
    """Share of the prose letters of `text` that are Arabic (1.0 when it has no prose letters)."""
    return arabic_ratio(prose(text))


def english_runs(text: str, min_words: int) -> list[str]:
    """Runs of at least `min_words` Latin words in the prose of `text` (untranslated English)."""
    return latin_runs(prose(text, single_letters=True), min_words)


def has_prose_letters(text: str) -> bool:
    """Whether `text` has Latin or Arabic letters outside notation (an English segment that needs translating)."""
    return bool(regex.search(r"\p{L}", prose(text)))


def without_glosses(text: str) -> str:
    """`text` without its parenthesised Latin glosses (for length ratios: a gloss is an addition)."""

    def gloss(match: regex.Match) -> str:
        return "" if _ARABIC_LETTER.search(text[: match.start()]) else match.group(0)

    return regex.sub(r"\s?" + _PARENTHESES.pattern, gloss, text)


def split_sentences(text: str, language: str) -> list[str]:
    """The sentences of `text` ("en": an English source, "ar": an Arabic translation), each with its
    end mark; a piece without letters or digits joins the sentence next to it."""
    ends = _ENGLISH_END if language == "en" else _ARABIC_END
    text = text.strip()
    pieces, start = [], 0
    for match in ends.finditer(text):
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    out: list[str] = []
    pending = ""
    for piece in filter(None, pieces):
        if not _CONTENT.search(piece):
            if out:
                out[-1] = f"{out[-1]} {piece}"
            else:
                pending = f"{pending} {piece}".strip()
            continue
        out.append(f"{pending} {piece}".strip())
        pending = ""
    return out or ([pending] if pending else [])


def sentences(text: str, language: str) -> int:
    """How many sentences `text` has (split_sentences)."""
    return len(split_sentences(text, language))


def _value(number: str) -> str:
    if _THOUSANDS.match(number):
        number = number.replace(",", "")
    number = number.replace(",", ".")  # a decimal comma, or a list "1,6" read the same way on both sides
    whole, dot, fraction = number.partition(".")
    whole = whole.lstrip("0") or "0"
    if dot:
        fraction = fraction.rstrip("0")
        return f"{whole}.{fraction}" if fraction else whole
    return whole


def number_values(text: str) -> Counter:
    """The numbers written in digits in `text`, as normalised values: a multiset.

    Arabic-Indic digits are ASCII; the Arabic comma between digits is a comma and "10 000" is 10000;
    "1.0" is 1 and ".10" is 0.1; digits that follow a Latin letter belong to a formula or an
    abbreviation (CO2, C4, q10, HbA1c) and are not numbers; digits before letters are (5mg, 65s, 3rd).
    """
    text = ascii_digits(strip_bidi(text))
    text = _ARABIC_COMMA.sub(",", text)
    text = _SPACE_THOUSANDS.sub(lambda m: regex.sub(r"\s", "", m.group(0)), text)
    found = []
    for match in _NUMBER.finditer(text):
        before = text[match.start() - 1] if match.start() else ""
        if _LATIN_LETTER.match(before):
            continue
        found.append(_value(match.group(0)))
    return Counter(found)


@dataclass(frozen=True)
class Numerals:
    """Numbers 0 to 10 written as words (numerals.yaml): English and Arabic word -> value."""

    english: dict[str, str]
    arabic: dict[str, str]
    arabic_prefixes: tuple[str, ...]
    arabic_suffixes: tuple[str, ...]

    @classmethod
    def from_file(cls, path: Path = NUMERALS_FILE) -> Numerals:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        known = {"english", "arabic", "arabic_prefixes", "arabic_suffixes"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        tables = {}
        for language in ("english", "arabic"):
            table = data.get(language)
            if not isinstance(table, dict) or not table:
                raise ConfigError(f"{path}: {language} must map each number to a list of words")
            words: dict[str, str] = {}
            for number, spelled in table.items():
                if not isinstance(number, int) or not isinstance(spelled, list) or not spelled:
                    raise ConfigError(f"{path}: {language}.{number}: expected a number and a list of words")
                for word in spelled:
                    if not isinstance(word, str) or not word.strip():
                        raise ConfigError(f"{path}: {language}.{number}: {word!r} is not a word")
                    key = match_form(word) if language == "arabic" else word.strip().lower()
                    if key in words and words[key] != str(number):
                        raise ConfigError(f"{path}: {language}: {word!r} is listed for {words[key]} and {number}")
                    words[key] = str(number)
            tables[language] = words
        affixes = {}
        for key in ("arabic_prefixes", "arabic_suffixes"):
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"{path}: {key} must be a list of non-empty strings")
            affixes[key] = tuple(sorted({match_form(v) for v in value}, key=len, reverse=True))
        return cls(tables["english"], tables["arabic"], affixes["arabic_prefixes"], affixes["arabic_suffixes"])

    def english_values(self, text: str) -> Counter:
        """Values of the English number words in `text`."""
        return Counter(self.english[w] for w in _WORD.findall(text.lower()) if w in self.english)

    def arabic_values(self, text: str) -> Counter:
        """Values of the Arabic number words in `text` (with a clitic prefix or a case ending)."""
        found = []
        for word in _WORD.findall(match_form(text)):
            value = self._arabic_word(word)
            if value is not None:
                found.append(value)
        return Counter(found)

    def _arabic_word(self, word: str) -> str | None:
        candidates = {word}
        for prefix in self.arabic_prefixes:
            if word.startswith(prefix):
                candidates.add(word[len(prefix) :])
        for candidate in list(candidates):
            for suffix in self.arabic_suffixes:
                if candidate.endswith(suffix):
                    candidates.add(candidate[: -len(suffix)])
        for candidate in sorted(candidates, key=len, reverse=True):
            if candidate in self.arabic:
                return self.arabic[candidate]
        return None


@lru_cache(maxsize=1)
def default_numerals() -> Numerals:
    return Numerals.from_file()


def number_differences(source: str, translation: str, numerals: Numerals | None = None) -> tuple[Counter, Counter]:
    """(numbers of the source missing from the translation, numbers of the translation not in the source).

    A number from 0 to 10 missing on one side counts as present when that side writes it as a word;
    words never count against a translation (Arabic "ثاني أكسيد الكربون" is carbon dioxide, not a 2).
    """
    numerals = numerals or default_numerals()
    want, got = number_values(source), number_values(translation)
    missing, extra = want - got, got - want
    if missing:
        missing -= numerals.arabic_values(translation)
    if extra:
        extra -= numerals.english_values(source)
    return missing, extra
