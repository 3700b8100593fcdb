"""The one Arabic text module: normalisation, comparison keys, letters, digits and script.

Every stage treats Arabic text through these functions (data_prep's training records and
dedup hashes, the LLM stages' checks, eval_tasks' answer keys and answer extraction), so a
question is read, compared and folded the same way everywhere.

- `normalise(text)`: what is WRITTEN to training data: NFC; tatweel, bidi control marks and
  BOMs removed; Arabic-Indic digits (and ٫ ٬) as ASCII; CRLF -> LF; outer whitespace
  stripped. Diacritics and mixed-script text are kept. Raises `TextError` for undecodable
  bytes (lone surrogates from a file that is not UTF-8).
- `fold(text)`: what is COMPARED, never written: NFKC, no invisible marks, no tatweel or
  diacritics, one alef (أ إ آ ٱ -> ا), ى -> ي, ة -> ه, ؤ -> و, ئ -> ي, ASCII digits,
  casefolded, single spaces. Option letters, answer keys, duplicate questions and glossary
  terms are matched on this form.
- `detect_language(text)`: "ar" when Arabic-script characters are at least `min_arabic_share`
  of the letters (ASCII letters + Arabic script), else "en"; None without letters.
- `arabic_ratio`, `is_mostly_arabic`, `latin_runs`, `numbers`: the script and number checks of
  the translation QA.

Import-light on purpose (bimedix is importable by the system Python): only the standard
library at module level; `regex` (Unicode scripts) is imported by the functions that need it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import cache

TATWEEL = "\u0640"
# LRM, RLM, ALM, the embeddings/overrides (LRE RLE PDF LRO RLO) and the isolates (LRI RLI FSI PDI).
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u200b\u200c\u200d"  # ZWSP, ZWNJ, ZWJ: invisible, dropped from comparison keys only
BOM = "\ufeff"
ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"  # U+0660..U+0669
EXTENDED_ARABIC_INDIC_DIGITS = "۰۱۲۳۴۵۶۷۸۹"  # U+06F0..U+06F9 (Persian/Urdu forms)
# Harakat (fathatan .. sukun and the rarer marks up to U+065F), Quranic annotation marks, the
# superscript alef: they never change which word is meant. As code points, for byte-level users.
DIACRITICS = frozenset([*range(0x0610, 0x061B), *range(0x064B, 0x0660), 0x0670, *range(0x06D6, 0x06EE)])
# Letters written interchangeably in practice (hamza carriers, alef maqsura, ta marbuta): one form each.
FOLDED_LETTERS = {
    0x0622: 0x0627,  # آ -> ا
    0x0623: 0x0627,  # أ -> ا
    0x0625: 0x0627,  # إ -> ا
    0x0671: 0x0627,  # ٱ -> ا
    0x0649: 0x064A,  # ى -> ي
    0x0629: 0x0647,  # ة -> ه
    0x0624: 0x0648,  # ؤ -> و
    0x0626: 0x064A,  # ئ -> ي
}

_DIGITS = {ord(ch): str(i) for i, ch in enumerate(ARABIC_INDIC_DIGITS)}
_DIGITS |= {ord(ch): str(i) for i, ch in enumerate(EXTENDED_ARABIC_INDIC_DIGITS)}
_DIGITS |= {0x066B: ".", 0x066C: ","}  # Arabic decimal and thousands separators, as digits go ASCII
_REMOVE = re.compile(f"[{TATWEEL}{BIDI_CONTROLS}{BOM}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NEEDS_WORK = re.compile(
    f"[{TATWEEL}{BIDI_CONTROLS}{BOM}{ARABIC_INDIC_DIGITS}{EXTENDED_ARABIC_INDIC_DIGITS}\u066b\u066c\r\ud800-\udfff]"
)
_INVISIBLE = dict.fromkeys(map(ord, BIDI_CONTROLS + ZERO_WIDTH + BOM))
# fold() deletes these and replaces those. (Not one str.translate: with a dict it costs ~120 ns a
# character on Arabic text; a regex deletion and a few str.replace calls cost a tenth of that.)
_FOLD_DELETE = re.compile(
    "[" + "".join(map(chr, sorted(DIACRITICS))) + TATWEEL + BIDI_CONTROLS + ZERO_WIDTH + BOM + "]"
)
_FOLD_PAIRS = [(chr(a), chr(b)) for a, b in FOLDED_LETTERS.items()] + [(chr(a), b) for a, b in _DIGITS.items()]
_FOLD_ANY = re.compile("[" + "".join(a for a, _ in _FOLD_PAIRS) + "]")


def _fold_chars(text: str) -> str:
    text = _FOLD_DELETE.sub("", text)
    if _FOLD_ANY.search(text):
        for old, new in _FOLD_PAIRS:
            if old in text:
                text = text.replace(old, new)
    return text


class TextError(ValueError):
    """Text that cannot be used: not a string, or undecodable bytes."""


def has_undecodable(text: str) -> bool:
    """True for text that carries lone surrogates (bytes that were not UTF-8, read with surrogateescape)."""
    return not text.isascii() and bool(_SURROGATE.search(text))


def normalise(text: str) -> str:
    """The written form of training text (see the module docstring)."""
    if not isinstance(text, str):
        raise TextError(f"expected text, got {type(text).__name__}")
    if _NEEDS_WORK.search(text):
        if _SURROGATE.search(text):
            raise TextError("undecodable bytes (the file is not valid UTF-8 here)")
        text = _REMOVE.sub("", text).translate(_DIGITS).replace("\r\n", "\n").replace("\r", "\n")
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text.strip()


_INVISIBLE_RE = re.compile(f"[{BIDI_CONTROLS}{ZERO_WIDTH}{BOM}]")


def strip_invisible(text: str) -> str:
    """Remove direction marks, zero-width characters and BOMs (invisible, they break comparisons)."""
    return text if text.isascii() else _INVISIBLE_RE.sub("", text)


def strip_bidi(text: str) -> str:
    return re.sub(f"[{BIDI_CONTROLS}]", "", text)


def ascii_digits(text: str) -> str:
    """Arabic-Indic and Extended Arabic-Indic digits (and the Arabic separators) as ASCII."""
    return text.translate(_DIGITS)


def fold(text: str, *, casefold: bool = True) -> str:
    """The comparison key of a text (see the module docstring); never written anywhere."""
    if not text.isascii():  # ASCII has nothing to compose, fold or remove: skip the two passes
        text = _fold_chars(unicodedata.normalize("NFKC", text))
    return " ".join((text.casefold() if casefold else text).split())


_VISIBLE = re.compile(f"[^\\s{TATWEEL}{BIDI_CONTROLS}{ZERO_WIDTH}{BOM}]")


def visible(text: str) -> bool:
    """Whether `text` has anything but whitespace, tatweel and invisible marks."""
    if text.isascii():
        return not text.isspace() and bool(text)
    return _VISIBLE.search(text) is not None


_WORD = re.compile(r"\w+")


def fold_words(text: str) -> str:
    """fold(), then punctuation dropped: the words of a text, for comparing questions and answers."""
    if not text.isascii():
        text = _fold_chars(unicodedata.normalize("NFKC", text))
    return " ".join(_WORD.findall(text.casefold()))


# ---------------------------------------------------------------------------------------------
# Script

DETECT_CHARS = 1000  # language is decided on the first 1000 characters
_NOT_ASCII_LETTER = bytes(b for b in range(256) if not (65 <= b <= 90 or 97 <= b <= 122))
_ARABIC_LEADS = (b"\xd8", b"\xd9", b"\xda", b"\xdb")  # UTF-8 lead bytes of U+0600..U+06FF
_NOT_THREE_BYTE_LEAD = bytes(b for b in range(256) if not 0xE0 <= b <= 0xEF)
_ARABIC_PUNCTUATION = tuple(mark.encode() for mark in "،؛؟")  # in the block, but not script
_OTHER_ARABIC = re.compile("[\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc]")  # supplements, presentation forms


def arabic_share(text: str) -> float | None:
    """Arabic-script characters / (those + ASCII letters) in the first DETECT_CHARS characters,
    None when there are neither. Counted on the UTF-8 bytes (the Arabic block U+0600..U+06FF,
    plus the supplements and presentation forms), ten times faster than a regex. Meant for
    normalised text: raw Arabic-Indic digits would count as Arabic script."""
    sample = text[:DETECT_CHARS]
    data = sample.encode("utf-8", "surrogatepass")
    latin = len(data.translate(None, _NOT_ASCII_LETTER))
    arabic = sum(data.count(lead) for lead in _ARABIC_LEADS)
    if arabic:
        arabic -= sum(data.count(mark) for mark in _ARABIC_PUNCTUATION)
    if data.translate(None, _NOT_THREE_BYTE_LEAD):  # three-byte characters: maybe presentation forms
        arabic += len(_OTHER_ARABIC.findall(sample))
    return arabic / (arabic + latin) if arabic + latin else None


def detect_language(text: str, min_arabic_share: float = 0.3) -> str | None:
    share = arabic_share(text)
    if share is None:
        return None
    return "ar" if share >= min_arabic_share else "en"


@cache
def _patterns():
    import regex

    latin_word = r"\p{Script=Latin}[\p{Script=Latin}'’\-]*"
    return {
        "letter": regex.compile(r"\p{L}"),
        "arabic_letter": regex.compile(r"[\p{Script=Arabic}&&\p{L}]", flags=regex.V1),
        "latin_word": regex.compile(latin_word),
        # a run of Latin words separated only by spaces and light punctuation
        "latin_run": regex.compile(rf"{latin_word}(?:[\s,;:]+{latin_word})*"),
    }


def arabic_ratio(text: str) -> float:
    """Share of letters (any script) that are Arabic script (1.0 for text with no letters at all)."""
    p = _patterns()
    letters = p["letter"].findall(text)
    if not letters:
        return 1.0
    return len(p["arabic_letter"].findall(text)) / len(letters)


def is_mostly_arabic(text: str, threshold: float = 0.5) -> bool:
    return arabic_ratio(text) >= threshold and bool(_patterns()["arabic_letter"].search(text))


def latin_runs(text: str, min_words: int) -> list[str]:
    """Runs of at least `min_words` consecutive Latin-script words (untranslated English)."""
    p = _patterns()
    return [m.group() for m in p["latin_run"].finditer(text) if len(p["latin_word"].findall(m.group())) >= min_words]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")


def numbers(text: str) -> Counter:
    """The numbers in `text`, digits made ASCII, thousands separators dropped: a multiset."""
    found = []
    for number in _NUMBER.findall(ascii_digits(strip_bidi(text))):
        if _THOUSANDS.match(number):
            number = number.replace(",", "")
        found.append(number.replace(",", "."))
    return Counter(found)
