"""Script, digit and matching helpers on Arabic edge cases: diacritics, tatweel, digits, mixed script, RTL marks."""

from __future__ import annotations

from collections import Counter

from data_prep.llm.text import arabic_ratio, ascii_digits, is_mostly_arabic, latin_runs, match_form, numbers


def test_arabic_indic_digits_equal_ascii_ones():
    assert ascii_digits("٤٥ و ۴۵") == "45 و 45"
    assert numbers("الجرعة ٥٠٠ ملغ، ١٢٫٥ ملغ") == numbers("dose 500 mg, 12.5 mg") == Counter({"500": 1, "12.5": 1})
    assert numbers("50,000 cells") == numbers("٥٠٬٠٠٠ خلية") == Counter({"50000": 1})


def test_match_form_drops_diacritics_tatweel_and_bidi_marks():
    assert match_form("الطَّبِيبُ") == match_form("الطبيب")
    assert match_form("الطـــبيب") == "الطبيب"
    assert match_form("\u200fنعم\u200e") == "نعم"
    assert match_form("أحمد إبراهيم آمال") == "احمد ابراهيم امال"


def test_arabic_ratio_counts_letters_only():
    assert arabic_ratio("٤٥٠ - ١٢") == 1.0  # no letters at all
    assert arabic_ratio("abc") == 0.0
    mixed = "المريض يتناول Atorvastatin يوميًا"
    assert 0.5 < arabic_ratio(mixed) < 0.8
    assert is_mostly_arabic("نعم") and not is_mostly_arabic("yes")


def test_latin_runs_find_untranslated_english_in_mixed_script():
    text = "المريض has severe chest pain منذ يومين، ويتناول HbA1c"
    assert latin_runs(text, 3) == ["has severe chest pain"]
    assert latin_runs(text, 5) == []
    assert latin_runs("\u200fتم قياس ضغط الدم blood pressure\u200f", 3) == []
