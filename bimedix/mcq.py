"""Multiple-choice conventions shared by every stage: option letters, PubMedQA labels, answer keys.

Arabic prompts label options with the Arabic letters in abjad order (أ ب ج د ه), as the Arabic
benchmarks do; English prompts with A B C D E. The fifth Arabic letter is written without the
tatweel (ه, not هـ) because text normalisation removes tatweel everywhere.
"""

from __future__ import annotations

from bimedix.arabic import fold

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
