"""Text normalisation and script-based language detection, shared by every converter.

Public (other stages may import these so that their text is treated the same way):

- `normalise(text)`: NFC; tatweel, bidi control marks and BOMs removed; Arabic-Indic digits
  written as ASCII digits (the one consistent way: Mixtral's tokenizer, the English sources and
  most Arabic benchmark files already write 0-9); CRLF -> LF; outer whitespace stripped.
  Diacritics (harakat) and mixed-script content are kept as they are. Raises `TextError` for
  text that carries undecodable bytes (lone surrogates from a non-UTF-8 file).
- `detect_language(text)`: "ar" when Arabic-script characters make up at least
  `min_arabic_share` of the letters, else "en"; None when the text has no letters at all.
  Call it on normalised text.
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

DETECT_CHARS = 1000  # language is decided on the first 1000 characters
_NOT_ASCII_LETTER = bytes(b for b in range(256) if not (65 <= b <= 90 or 97 <= b <= 122))
_ARABIC_LEADS = (b"\xd8", b"\xd9", b"\xda", b"\xdb")  # UTF-8 lead bytes of U+0600..U+06FF
_NOT_THREE_BYTE_LEAD = bytes(b for b in range(256) if not 0xE0 <= b <= 0xEF)
_ARABIC_PUNCTUATION = tuple(mark.encode() for mark in "،؛؟")  # in the block, but not script
_OTHER_ARABIC = re.compile("[\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc]")  # supplements, presentation forms


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
    """Arabic-script characters / (those + ASCII letters) in the first DETECT_CHARS characters,
    None when there are neither. Counted on the UTF-8 bytes (the Arabic block U+0600..U+06FF,
    plus the supplements and presentation forms), which is ten times faster than a regex. Meant
    for normalised text: raw Arabic-Indic digits would count as Arabic script."""
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
