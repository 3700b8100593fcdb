"""bimedix.arabic, the one Arabic text module: normalisation (written), folding (compared), script, digits."""

from __future__ import annotations

import pytest

from bimedix.arabic import TextError, detect_language, fold, fold_words, normalise, visible
from bimedix.dedup import canonical_words
from bimedix.mcq import answer_index, letter_key, pubmedqa_label


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("e\u0301", "é"),  # NFC composes
        ("\u0627\u0654", "أ"),  # alef + hamza above -> one letter
        ("الســـكري", "السكري"),  # tatweel removed
        ("\u200fمرحبا\u200e", "مرحبا"),  # RLM / LRM removed
        ("\u202bنص\u202c \u2067عربي\u2069 \u061c", "نص عربي"),  # embeddings, isolates, ALM
        ("\ufeffText", "Text"),  # BOM
        ("سكر الدم ٥٢٠ ملغ/دل", "سكر الدم 520 ملغ/دل"),  # Arabic-Indic digits -> ASCII
        ("۱۲۳ و ٧٫٥ و ١٬٠٠٠", "123 و 7.5 و 1,000"),  # extended digits, decimal and thousands separators
        ("line1\r\nline2\rline3", "line1\nline2\nline3"),
        ("  padded \n", "padded"),
        ("الكُلى تُصفّي الدم", "الكُلى تُصفّي الدم"),  # diacritics are content: kept
        ("جرعة metformin 500 mg يوميًا (HbA1c < 7%)", "جرعة metformin 500 mg يوميًا (HbA1c < 7%)"),  # mixed script intact
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


@pytest.mark.parametrize("bad", ["bytes \udcff here", 12.5, None])
def test_normalise_refuses_undecodable_or_non_text(bad):
    if isinstance(bad, str):
        with pytest.raises(TextError, match="undecodable"):
            normalise(bad)
    else:
        with pytest.raises(TextError):
            normalise(bad)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Which drug is first-line for type 2 diabetes?", "en"),
        ("ما الدواء الأول لعلاج السكري من النوع الثاني؟", "ar"),
        ("ما دور ATP و ADP في تقلص العضلات وما علاقة HbA1c بذلك؟", "ar"),  # Arabic with Latin abbreviations
        ("The Arabic word for kidney is كلية.", "en"),
        ("الكُلْيَةُ عُضْوٌ", "ar"),  # fully diacritised
        ("١٢٣ + 456 = ?", None),  # no letters (once normalised)
    ],
)
def test_detect_language_by_script(text, language):
    assert detect_language(normalise(text)) == language


def test_fold_is_the_one_comparison_form():
    """One table for every stage: alef forms, alef maqsura, ta marbuta AND the hamza carriers ؤ ئ
    (data_prep's dedup, the LLM stage's glossary matching and eval_tasks' answer keys used to disagree on them)."""
    assert fold("مسؤول") == fold("مسوول") and fold("مسئول") == fold("مسيول")
    assert fold("أإآٱ ى ة") == "اااا ي ه"
    assert fold("\u200fالطَّبِيـــبُ\u200e") == "الطبيب"
    assert fold("Answer: (B)") == "answer: (b)" and fold("٢٠٢٤") == "2024"
    assert fold_words("Which of the following is TRUE?") == fold_words("which of the following is true")
    # dedup's byte-level canonical words fold the same letters
    assert canonical_words("مسؤول عن المسئولية") == canonical_words("مسوول عن المسيوليه")


def test_visible_text():
    assert not visible("  \u200f\u0640 \ufeff")
    assert visible("ا")


@pytest.mark.parametrize(
    ("key", "count", "expected"),
    [
        ("B", 4, 1),
        ("(b)", 4, 1),
        ("ب", 4, 1),
        ("إ", 4, 0),
        ("ه", 5, 4),
        ("E", 4, None),
        ("٢", 4, 2),
        (2, 4, 2),
        (True, 4, None),
    ],
)
def test_answer_keys_in_either_script(key, count, expected):
    assert answer_index(key, count) == expected


def test_letter_keys_refuse_numbers_written_as_text():
    assert letter_key("2", 4) is None and letter_key(2, 4) == 2 and letter_key("(C)", 4) == 2


def test_pubmedqa_labels_in_both_languages():
    assert [pubmedqa_label(v) for v in ("Yes", "no.", "MAYBE", "نعم", "لا", "ربما", "perhaps", 1)] == [
        0,
        1,
        2,
        0,
        1,
        2,
        None,
        None,
    ]


def test_fold_equals_its_one_table_definition_fuzzed():
    """fold() deletes and replaces with a regex and str.replace (ten times faster on Arabic than
    str.translate with a dict); it must equal the plain definition: NFKC, then the table."""
    import random
    import unicodedata

    from bimedix import arabic

    table = {**dict.fromkeys([*arabic.DIACRITICS, ord(arabic.TATWEEL)]), **arabic.FOLDED_LETTERS}
    table |= dict.fromkeys(map(ord, arabic.BIDI_CONTROLS + arabic.ZERO_WIDTH + arabic.BOM))
    table |= {ord(d): str(i) for i, d in enumerate(arabic.ARABIC_INDIC_DIGITS)}
    table |= {ord(d): str(i) for i, d in enumerate(arabic.EXTENDED_ARABIC_INDIC_DIGITS)} | {0x066B: ".", 0x066C: ","}
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x0600, 0x0700)] + [*"abcXYZ .,12\u200f\u200b\ufeff\u202b\u2067", "ﻻ", "²", "ﺃ"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        expected = " ".join(unicodedata.normalize("NFKC", text).translate(table).casefold().split())
        assert fold(text) == expected, repr(text)
