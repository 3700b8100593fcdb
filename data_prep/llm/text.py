"""Script and digit helpers for the QA checks: the one Arabic text module, bimedix/arabic.py.

Kept as a name other modules of this stage import (checks.py, glossary.py, review.py, ...); the
functions are bimedix.arabic's, so every stage folds, counts and compares Arabic text alike.
"""

from __future__ import annotations

from bimedix.arabic import arabic_ratio, ascii_digits, fold, is_mostly_arabic, latin_runs, numbers, strip_bidi

__all__ = ["arabic_ratio", "ascii_digits", "is_mostly_arabic", "latin_runs", "match_form", "numbers", "strip_bidi"]


def match_form(text: str) -> str:
    """A form for comparing words, not for output: bimedix.arabic.fold (NFKC, no bidi marks, no
    diacritics or tatweel, one alef, ya for alef maqsura, ha for ta marbuta, waw and ya for their
    hamza forms, ASCII digits, case folded, single spaces)."""
    return fold(text)
