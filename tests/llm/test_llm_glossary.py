"""The EN->AR glossary: found in English (longest term, plurals, hyphens), checked in Arabic (clitics, marks)."""

from __future__ import annotations

import pytest

from data_prep.llm.config import ConfigError
from data_prep.llm.glossary import Glossary, default_glossary


def test_the_shipped_glossary_loads_and_is_arabic():
    glossary = default_glossary()
    assert len(glossary.terms) >= 100
    assert {t.english for t in glossary.find("Hypertension and chest pains")} == {"hypertension", "chest pain"}


def test_longest_term_wins_and_plurals_and_hyphens_match():
    found = [t.english for t in default_glossary().find("high blood pressure, kidney-stones and diabetes mellitus")]
    assert found == ["high blood pressure", "kidney stone", "diabetes mellitus"]


@pytest.mark.parametrize(
    "arabic",
    [
        "يعاني من ارتفاع ضغط الدم",  # plain
        "يعاني من ارتفاعِ ضغطِ الدّمِ",  # diacritics
        "يعاني من ارتفـــاع ضغط الدم",  # tatweel
        "\u200fيعاني من ارتفاع ضغط الدم\u200f",  # RTL marks
        "وبارتفاع ضغط الدم",  # clitics
    ],
)
def test_arabic_forms_are_found_despite_marks_and_clitics(arabic):
    assert default_glossary().missing("He has hypertension", arabic) == []


def test_a_missing_term_is_reported_with_its_preferred_form():
    missing = default_glossary().missing("She has a fever", "لديها صداع")
    assert [(t.english, t.preferred) for t in missing] == [("fever", "حمى")]


def test_bad_glossary_lines_name_the_line(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("# comment\nfever\tحمى\ncough\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"g\.tsv:3: expected english<TAB>arabic"):
        Glossary.from_file(path)
    path.write_text("fever\tfever\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"g\.tsv:1: Arabic form 'fever' is not in Arabic script"):
        Glossary.from_file(path)
