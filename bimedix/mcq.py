"""Multiple-choice conventions shared by every stage: option letters, PubMedQA labels, answer keys.

Arabic prompts label options with the Arabic letters in abjad order (أ ب ج د ه), as the Arabic
benchmarks do; English prompts with A B C D E. The fifth Arabic letter is written without the
tatweel (ه, not هـ) because text normalisation removes tatweel everywhere.

The letter table (`LABELS`, `option_label`) is the one place that says how files write an
option's label, for every reader (MedArabiQ's lettered lines, the normalised MCQ's "(A) .."
block, answer keys) and for the generative tasks' answer extraction. It reads text as the readers
see it, before any normalisation: Latin A-J (either case), Arabic أ ب ج د ه و in abjad order (أ
also as ا إ آ, ه also as هـ with tatweel, the usual printed form of the fifth letter), or a number
(ASCII, Arabic-Indic ٠-٩ or Persian ۰-۹, counted from 1); optionally in brackets; then `.` `)`
`]` `-` `:` or an Arabic comma, semicolon or full stop (، ؛ ۔).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bimedix.arabic import TATWEEL, ascii_digits, fold, strip_invisible

OPTION_LETTERS: dict[str, tuple[str, ...]] = {
    "en": ("A", "B", "C", "D", "E"),
    "ar": ("أ", "ب", "ج", "د", "ه"),
}
MAX_OPTIONS = len(OPTION_LETTERS["en"])

# PubMedQA's three labels, in the order the benchmark lists them.
PUBMEDQA_LABELS: dict[str, tuple[str, ...]] = {
    "en": ("yes", "no", "maybe"),
    "ar": ("نعم", "لا", "ربما"),
}


def option_letters(language: str, count: int) -> tuple[str, ...]:
    """The first `count` option letters for `language` ('en' or 'ar')."""
    try:
        letters = OPTION_LETTERS[language]
    except KeyError:
        raise ValueError(f"unknown language {language!r}: expected one of {sorted(OPTION_LETTERS)}") from None
    if not 1 <= count <= len(letters):
        raise ValueError(f"{count} options: {language} letters cover 1 to {len(letters)}")
    return letters[:count]


# Every option letter, Latin and Arabic, folded (أ -> ا, ه stays ه), mapped to its position.
_LETTER_POSITION: dict[str, int] = {}
for _letters in OPTION_LETTERS.values():
    for _i, _letter in enumerate(_letters):
        _LETTER_POSITION[fold(_letter)] = _i
_KEY_PUNCTUATION = "()[]{}.:)-–—،؛ "


_AS_WRITTEN = {chr(ord("A") + i): i for i in range(26)} | {chr(ord("a") + i): i for i in range(26)}
_AS_WRITTEN |= {letter: i for letters in OPTION_LETTERS.values() for i, letter in enumerate(letters)}


# The letter table: every label an option line may carry, by script, in order (position 0 first).
LABELS: dict[str, tuple[str, ...]] = {
    "latin": tuple("ABCDEFGHIJ"),
    "arabic": ("أ", "ب", "ج", "د", "ه", "و"),  # abjad order; ه is printed هـ (tatweel) as often as not
}
_ARABIC_LABEL_POSITION = {fold(letter): i for i, letter in enumerate(LABELS["arabic"])}  # ا ب ج د ه و
_LABEL_SEPARATORS = ".)\\]\\-:–—،؛۔"
# A label: an optional bracket, ONE letter or a number of one or two digits (tatweel may follow a
# letter), a separator, the option's text. A single letter of any script counts, so that a letter the
# table lacks is seen as a label (and refused by the reader) rather than read as text.
_LABEL = re.compile(
    rf"^\s*(?P<open>[(\[]?)\s*(?P<token>[^\W\d_]|[0-9٠-٩۰-۹]{{1,2}}){TATWEEL}*\s*(?P<sep>[{_LABEL_SEPARATORS}])\s?(?P<text>.*)$",
    re.DOTALL,
)


class Label(NamedTuple):
    """An option line's label: its position (None: a letter the table lacks), script, and the rest."""

    position: int | None
    script: str  # "latin", "arabic", "number" or "other"
    token: str  # as written (tatweel and invisible marks removed)
    text: str  # the option's text after the label, as written
    bracketed: bool  # written "(A)" / "[A]" rather than "A." / "A)"


def label_position(token: str) -> tuple[int | None, str]:
    """A label's token ('B', 'b', 'ب', 'إ', 'هـ', '3', '٣', '۳') -> (position, script): script "latin",
    "arabic" or "number" (counted from 1), "other" for any other letter; position None for a letter
    the table lacks (K, ز, ...)."""
    token = strip_invisible(token).replace(TATWEEL, "").strip()
    digits = ascii_digits(token)
    if digits.isascii() and digits.isdigit():
        return int(digits) - 1, "number"
    if len(token) != 1:
        return None, "other"
    if token.isascii():
        index = ord(token.upper()) - ord("A")
        return (index if 0 <= index < len(LABELS["latin"]) else None), "latin" if token.isalpha() else "other"
    if "\u0600" <= token <= "\u06ff":
        return _ARABIC_LABEL_POSITION.get(fold(token)), "arabic"
    return None, "other"


def option_label(line: str) -> Label | None:
    """The label that opens an option line ('هـ. نص', '(B) text', '٣- نص'), or None when the line has none."""
    match = _LABEL.match(strip_invisible(line))
    if match is None:
        return None
    closer = {"(": ")", "[": "]"}.get(match["open"])
    if closer and match["sep"] != closer:
        return None  # "(B." or "(B]" is no label
    position, script = label_position(match["token"])
    return Label(position, script, match["token"], match["text"], bool(match["open"]))


def letter_position(letter: str) -> int | None:
    """'B', 'b', 'ب', 'إ' -> the position the letter names (0-based), or None for anything else."""
    if letter in _AS_WRITTEN:  # the common case, without folding
        return _AS_WRITTEN[letter]
    key = fold(letter)
    if len(key) == 1 and "a" <= key <= "z":
        return ord(key) - ord("a")
    return _LETTER_POSITION.get(key)


def answer_index(value: object, count: int, *, number_base: int = 0) -> int | None:
    """The 0-based option index an answer key names, or None when it names none of `count` options.

    A letter (A-Z or Arabic أ ب ج د ه, any case, in brackets, with tatweel, diacritics or
    direction marks) or a number (int, "2", Arabic-Indic "٢") counted from `number_base`.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        index = value - number_base
    elif isinstance(value, float) and value.is_integer():
        index = int(value) - number_base
    elif isinstance(value, str):
        key = fold(value).strip(_KEY_PUNCTUATION)
        if key.isdigit():
            index = int(key) - number_base
        else:
            position = letter_position(key) if key else None
            if position is None:
                return None
            index = position
    else:
        return None
    return index if 0 <= index < count else None


def letter_key(value: object, count: int) -> int | None:
    """An answer given as a letter ('B', '(B)', 'ب') or as a 0-based index (int): the option index,
    or None. A number written as text is refused: whether "2" counts from 0 or 1 is not known."""
    if isinstance(value, str) and fold(value).strip(_KEY_PUNCTUATION).isdigit():
        return None
    return answer_index(value, count)


def pubmedqa_label(value: object) -> int | None:
    """'yes' / 'No.' / 'ربما' -> the label's position (yes 0, no 1, maybe 2), or None."""
    if not isinstance(value, str):
        return None
    key = fold(value).strip(" .")
    for labels in PUBMEDQA_LABELS.values():
        for i, label in enumerate(labels):
            if key == fold(label):
                return i
    return None
