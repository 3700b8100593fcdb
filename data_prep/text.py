"""Text normalisation and script-based language detection, shared by every converter.

Public (other stages may import these so that their text is treated the same way):

- `normalise(text)`: NFC; tatweel, bidi control marks and BOMs removed; Arabic-Indic digits
  written as ASCII digits (the one consistent way: Mixtral's tokenizer, the English sources and
  most Arabic benchmark files already write 0-9); CRLF -> LF; outer whitespace stripped.
  Diacritics (harakat) and mixed-script content are kept as they are. Raises `TextError` for
  text that carries undecodable bytes (lone surrogates from a non-UTF-8 file).
- `detect_language(text)`: "ar" when Arabic letters make up at least `min_arabic_share` of the
  letters, else "en"; None when the text has no letters at all.
"""

from __future__ import annotations

import re
import unicodedata

TATWEEL = "\u0640"
# LRM, RLM, ALM, the embeddings/overrides (LRE RLE PDF LRO RLO) and the isolates (LRI RLI FSI PDI).
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
BOM = "\ufeff"
ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"  # U+0660..U+0669
EXTENDED_ARABIC_INDIC_DIGITS = "۰۱۲۳۴۵۶۷۸۹"  # U+06F0..U+06F9 (Persian/Urdu forms)

_DIGITS = {ord(ch): str(i) for i, ch in enumerate(ARABIC_INDIC_DIGITS)}
_DIGITS |= {ord(ch): str(i) for i, ch in enumerate(EXTENDED_ARABIC_INDIC_DIGITS)}
_DIGITS |= {0x066B: ".", 0x066C: ","}  # Arabic decimal and thousands separators, as digits go ASCII
_REMOVE = re.compile(f"[{TATWEEL}{BIDI_CONTROLS}{BOM}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# One cheap search decides whether a string needs more than the NFC check (most do not).
_NEEDS_WORK = re.compile(
    f"[{TATWEEL}{BIDI_CONTROLS}{BOM}{ARABIC_INDIC_DIGITS}{EXTENDED_ARABIC_INDIC_DIGITS}\u066b\u066c\r\ud800-\udfff]"
)

_ARABIC_LETTER = re.compile("[\u0621-\u063a\u0641-\u064a\u066e-\u06d3\u06fa-\u06ff\ufb50-\ufdff\ufe70-\ufefc]")
_LATIN_LETTER = re.compile("[A-Za-z\u00c0-\u024f]")
DETECT_CHARS = 2000  # language is decided on the first 2000 characters


class TextError(ValueError):
    """Text that cannot be used: not a string, or undecodable bytes."""


def normalise(text: str) -> str:
    if not isinstance(text, str):
        raise TextError(f"expected text, got {type(text).__name__}")
    if _NEEDS_WORK.search(text):
        if _SURROGATE.search(text):
            raise TextError("undecodable bytes (the file is not valid UTF-8 here)")
        text = _REMOVE.sub("", text).translate(_DIGITS).replace("\r\n", "\n").replace("\r", "\n")
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text.strip()


def arabic_share(text: str) -> float | None:
    """Arabic letters / (Arabic + Latin letters) in the first DETECT_CHARS characters; None without letters."""
    sample = text[:DETECT_CHARS]
    arabic = len(_ARABIC_LETTER.findall(sample))
    latin = len(_LATIN_LETTER.findall(sample))
    return arabic / (arabic + latin) if arabic + latin else None


def detect_language(text: str, min_arabic_share: float = 0.3) -> str | None:
    share = arabic_share(text)
    if share is None:
        return None
    return "ar" if share >= min_arabic_share else "en"
