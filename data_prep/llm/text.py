"""Script and digit helpers for the checks: Arabic ratio, Latin runs, numbers, a matching form of Arabic.

Kept deliberately minimal (the data stage owns text normalisation for training data): the
functions here never rewrite what is written to an output file; they only decide checks.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

import regex

# Arabic-Indic (U+0660..) and Extended Arabic-Indic (Persian, U+06F0..) digits count as ASCII digits;
# the Arabic decimal and thousands separators as '.' and ','.
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹٫٬", "01234567890123456789.,")
# Bidirectional controls: LRM, RLM, ALM, embeddings/overrides, isolates.
_BIDI = regex.compile(r"[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
# Arabic diacritics (harakat, Quranic marks, superscript alef) and the tatweel.
_DIACRITICS = regex.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي"})
_LETTER = regex.compile(r"\p{L}")
_ARABIC_LETTER = regex.compile(r"[\p{Script=Arabic}&&\p{L}]", flags=regex.V1)
_LATIN_WORD = regex.compile(r"\p{Script=Latin}[\p{Script=Latin}'’\-]*")
# A run of Latin words separated only by spaces and light punctuation.
_LATIN_RUN = regex.compile(
    r"\p{Script=Latin}[\p{Script=Latin}'’\-]*(?:[\s,;:]+\p{Script=Latin}[\p{Script=Latin}'’\-]*)*"
)
_NUMBER = regex.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = regex.compile(r"^\d{1,3}(?:,\d{3})+$")


def ascii_digits(text: str) -> str:
    """Arabic-Indic and Extended Arabic-Indic digits (and the Arabic separators) as ASCII."""
    return text.translate(_DIGITS)


def strip_bidi(text: str) -> str:
    return _BIDI.sub("", text)


def match_form(text: str) -> str:
    """A form for comparing words, not for output: NFC, no bidi marks, no diacritics or tatweel,
    one alef, ya for alef maqsura, ha for ta marbuta, ASCII digits, lower case, single spaces."""
    text = unicodedata.normalize("NFC", text)
    text = _DIACRITICS.sub("", strip_bidi(text))
    text = ascii_digits(text.translate(_ALEF)).lower()
    return " ".join(text.split())


def arabic_ratio(text: str) -> float:
    """Share of letters that are Arabic script (1.0 for text with no letters at all)."""
    letters = _LETTER.findall(text)
    if not letters:
        return 1.0
    return len(_ARABIC_LETTER.findall(text)) / len(letters)


def latin_runs(text: str, min_words: int) -> list[str]:
    """Runs of at least `min_words` consecutive Latin-script words (untranslated English)."""
    runs = []
    for match in _LATIN_RUN.finditer(text):
        if len(_LATIN_WORD.findall(match.group())) >= min_words:
            runs.append(match.group())
    return runs


def numbers(text: str) -> Counter:
    """The numbers in `text`, digits made ASCII, thousands separators dropped: a multiset."""
    found = []
    for number in _NUMBER.findall(ascii_digits(strip_bidi(text))):
        if _THOUSANDS.match(number):
            number = number.replace(",", "")
        found.append(number.replace(",", "."))
    return Counter(found)


def is_mostly_arabic(text: str, threshold: float = 0.5) -> bool:
    return arabic_ratio(text) >= threshold and bool(_ARABIC_LETTER.search(text))
