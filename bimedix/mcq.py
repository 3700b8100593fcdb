"""Multiple-choice conventions shared by data_prep (training prompts) and eval_tasks (benchmarks).

Arabic prompts label options with the Arabic letters in abjad order (أ ب ج د ه), as the Arabic
benchmarks do; English prompts with A B C D E. The fifth Arabic letter is written without the
tatweel (ه, not هـ) because text normalisation removes tatweel everywhere.
"""

from __future__ import annotations

OPTION_LETTERS: dict[str, tuple[str, ...]] = {
    "en": ("A", "B", "C", "D", "E"),
    "ar": ("أ", "ب", "ج", "د", "ه"),
}

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
