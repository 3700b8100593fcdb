"""What translation must not touch is replaced by placeholders and put back exactly."""

from __future__ import annotations

import pytest

from data_prep.llm.protect import Protected, UnprotectableText, default_protector, placeholders_in, restore

CASES = {
    "dose and vital signs": (
        "A 45-year-old man takes metformin 500 mg; his blood pressure is 150/90 mmHg and HbA1c 8.5%.",
        ["45", "metformin", "500 mg", "150/90 mmHg", "HbA1c", "8.5%"],
    ),
    "lab values, ranges, abbreviations": (
        "Na+ 130 mEq/L, WBC 12 x 10^9/L, temperature 38.5 °C for 2-3 days; ECG shows ST elevation.",
        ["Na+", "130 mEq/L", "WBC", "12 x 10^9/L", "38.5 °C", "2-3", "ECG", "ST"],
    ),
    "drug stems": ("Give atorvastatin, lisinopril and omeprazole.", ["atorvastatin", "lisinopril", "omeprazole"]),
    "markdown": ("## Plan\n- **Rest**\n1. See `dose 5`", ["## ", "- ", "**", "**", "1. ", "`dose 5`"]),
}


@pytest.mark.parametrize("name", CASES)
def test_protects_and_restores(name):
    text, expected = CASES[name]
    table = Protected()
    protected = default_protector().protect(text, table)
    assert list(table.originals.values()) == expected
    assert restore(protected, table) == text
    assert sum(placeholders_in(protected).values()) == len(expected)


def test_all_caps_exam_words_are_translated_not_protected():
    table = Protected()
    protected = default_protector().protect("All of the following are TRUE EXCEPT: COPD", table)
    assert "EXCEPT" in protected and "TRUE" in protected
    assert list(table.originals.values()) == ["COPD"]


def test_numbering_continues_across_the_segments_of_an_item():
    table = Protected()
    first = default_protector().protect("Take 5 mg", table)
    second = default_protector().protect("or 10 mg", table)
    assert (first, second) == ("Take ⟦1⟧", "or ⟦2⟧")


@pytest.mark.parametrize("text", ["see ⟦1⟧", 'a <seg id="x"> b', "the end</seg>"])
def test_reserved_text_cannot_be_protected(text):
    with pytest.raises(UnprotectableText, match="reserves"):
        default_protector().protect(text, Protected())


def test_option_letters_referred_to_in_the_text_survive():
    table = Protected()
    protected = default_protector().protect("Both A and C are correct, unlike (B). A man has B12 deficiency.", table)
    assert list(table.originals.values()) == ["A and C", "(B)", "B12"]
    assert protected.startswith("Both ⟦1⟧ are correct, unlike ⟦2⟧. A man has ⟦3⟧")
