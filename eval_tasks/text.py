"""Text helpers for answer keys and model answers in English and Arabic.

Benchmark text itself is never rewritten (English prompts must equal lm-eval's built-ins byte for
byte); these helpers only normalise what is *compared*: answer keys in data files ("B", "(B)",
"ب", 2, "٢") and letters or labels in a model's generated answer.
"""

from __future__ import annotations

import re
import unicodedata

from bimedix.mcq import OPTION_LETTERS

# Invisible direction marks that survive copy-paste from RTL editors: LRM, RLM, ALM, embeddings,
# overrides and isolates; and the zero-width characters and BOM that come with them.
_BIDI_AND_ZERO_WIDTH = dict.fromkeys(
    [0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x061C, 0xFEFF, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
TATWEEL = "\u0640"
# Harakat (fathatan .. sukun), Quranic marks and the superscript alef: they never change which letter is meant.
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
# Alef with hamza above/below, madda and wasla are written interchangeably for the option letter أ.
_ALEF_FORMS = str.maketrans({"إ": "ا", "أ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})


def strip_invisible(text: str) -> str:
    """Remove direction marks and zero-width characters (they are invisible and break comparisons)."""
    return text.translate(_BIDI_AND_ZERO_WIDTH)


def normalise(text: str, *, casefold: bool = True) -> str:
    """A comparison key: NFKC, no direction marks, no tatweel or diacritics, one alef form, casefolded
    (unless told not to), single spaces. Arabic-Indic digits become ASCII digits (NFKC leaves them)."""
    text = unicodedata.normalize("NFKC", strip_invisible(text))
    text = text.replace(TATWEEL, "")
    text = _DIACRITICS.sub("", text).translate(_ALEF_FORMS)
    text = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
    return " ".join((text.casefold() if casefold else text).split())


# Every option letter, Latin and Arabic, normalised, mapped to its position.
_LETTER_POSITION: dict[str, int] = {}
for _letters in OPTION_LETTERS.values():
    for _i, _letter in enumerate(_letters):
        _LETTER_POSITION[normalise(_letter)] = _i
_KEY_PUNCTUATION = "()[]{}.:)-–—،؛ "


def parse_answer_key(value: object, n_options: int, *, number_base: int = 0) -> int | None:
    """The 0-based option index an answer key names, or None when it names no option in range.

    Accepts a letter (A-Z or Arabic أ ب ج د ه, in any case, wrapped in brackets, with tatweel,
    diacritics or direction marks) or a number (int, "2", Arabic-Indic "٢") counted from
    `number_base` (MedMCQA's `cop` is 1-based in the original release, 0-based on the hub).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        index = value - number_base
    elif isinstance(value, float) and value.is_integer():
        index = int(value) - number_base
    elif isinstance(value, str):
        key = normalise(value).strip(_KEY_PUNCTUATION)
        if key.isdigit():
            index = int(key) - number_base
        elif len(key) == 1 and "a" <= key <= "z":
            index = ord(key) - ord("a")
        elif key in _LETTER_POSITION:
            index = _LETTER_POSITION[key]
        else:
            return None
    else:
        return None
    return index if 0 <= index < n_options else None
