"""Checks of a translated item: each failure is found and named, with the segment, for the repair prompt."""

from __future__ import annotations

import dataclasses

import pytest

from data_prep.llm.checks import (
    format_segments,
    parse_segments,
    qa_failures,
    qa_scores,
    segment_failures,
    structural_failures,
)
from data_prep.llm.config import QASettings
from data_prep.llm.glossary import default_glossary
from data_prep.llm.protect import Protected, default_protector

SOURCE = {
    "question": "A 45-year-old man has fever. Give paracetamol 500 mg.",
    "option:A": "Influenza",
    "option:B": "Asthma",
}
GOOD = {
    "question": "رجل يبلغ من العمر ⟦1⟧ عامًا لديه حمى. أعطه ⟦2⟧ ⟦3⟧.",
    "option:A": "الإنفلونزا",
    "option:B": "الربو",
}


def protect(source):
    table = Protected()
    return {k: default_protector().protect(v, table) for k, v in source.items()}, table


def failures_for(reply, source=SOURCE):
    protected, table = protect(source)
    return [str(f) for f in structural_failures(source, protected, reply, table, default_glossary(), QASettings())]


def test_a_good_translation_passes():
    assert failures_for(GOOD) == []


def test_segments_round_trip_through_the_reply_format():
    found, problems = parse_segments("noise\n" + format_segments(GOOD) + "\nmore noise")
    assert found == GOOD and problems == []


def test_a_dropped_option_is_a_different_option_count():
    found, problems = parse_segments(format_segments({k: v for k, v in GOOD.items() if k != "option:B"}))
    failures = segment_failures(list(SOURCE), found, problems)
    assert [(f.check, str(f)) for f in failures] == [
        ("segments", "segments missing from the reply: option:B (expected 3 blocks)")
    ]
    assert [str(f) for f in segment_failures(list(SOURCE), {}, [])] == [
        "the reply has no <seg> blocks; expected 3: question, option:A, option:B"
    ]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("رجل يبلغ من العمر عامًا لديه حمى. أعطه ⟦2⟧ ⟦3⟧.", "question: placeholders missing: ⟦1⟧ (45)"),
        ("رجل يبلغ ⟦1⟧ ⟦1⟧ عامًا لديه حمى. أعطه ⟦2⟧ ⟦3⟧.", "question: placeholders repeated: ⟦1⟧"),
        ("رجل ⟦1⟧ ⟦9⟧ لديه حمى. أعطه ⟦2⟧ ⟦3⟧.", "question: placeholders that belong elsewhere or do not exist: ⟦9⟧"),
        ("A man aged ⟦1⟧ has fever. حمى ⟦2⟧ ⟦3⟧", "question: untranslated English left: 'A man aged'"),
        ("Man ⟦1⟧ fever حمى ⟦2⟧ ⟦3⟧", "question: only 27% of the letters are Arabic"),
        (
            "رجل يبلغ من العمر ⟦1⟧ عامًا لديه صداع. أعطه ⟦2⟧ ⟦3⟧.",
            "question: the glossary term 'fever' must be translated as 'حمى'",
        ),
        (
            "رجل ⟦1⟧ عامًا، ٤٦ يوما، لديه حمى. أعطه ⟦2⟧ ⟦3⟧.",
            "question: numbers differ from the source (not in the source: 46)",
        ),
    ],
)
def test_each_structural_failure_is_named(question, expected):
    failures = failures_for(GOOD | {"question": question})
    assert any(f.startswith(expected) for f in failures), failures


def test_arabic_indic_digits_written_by_the_model_count_as_the_same_number():
    source = {"question": "Give 2 doses of paracetamol 500 mg."}
    # the model wrote "2" in Arabic-Indic digits instead of keeping the dose placeholder split
    reply = {"question": "أعط ⟦1⟧ جرعة من ⟦2⟧ ⟦3⟧."}
    assert failures_for(reply, source) == []
    protected, table = protect(source)
    table.originals[1] = "٢"  # as if the placeholder held Arabic-Indic digits
    assert structural_failures(source, protected, reply, table, default_glossary(), QASettings()) == []


def test_line_breaks_of_markdown_are_kept():
    source = {"answer": "## Plan\n- Rest\n- Drink water"}
    failures = failures_for({"answer": "⟦1⟧الخطة ⟦2⟧راحة ⟦3⟧اشرب الماء"}, source)
    assert "answer: 1 lines, the source has 3; keep the line breaks" in failures
    assert failures_for({"answer": "⟦1⟧الخطة\n⟦2⟧راحة\n⟦3⟧اشرب الماء"}, source) == []


def test_qa_scores_and_thresholds():
    source = {"question": "The patient has a fever and a cough since three days.", "option:A": "Influenza"}
    translation = {"question": "المريض لديه حمى وسعال منذ ثلاثة أيام.", "option:A": "الإنفلونزا"}
    faithful = {"question": "the patient has fever and cough since three days.", "option:A": "influenza"}
    drifted = {"question": "a woman broke her leg yesterday.", "option:A": "influenza"}
    good = qa_scores(source, translation, faithful)
    bad = qa_scores(source, translation, drifted)
    assert good.chrf > 80 > 50 > bad.chrf
    assert qa_failures(good, source, QASettings()) == []
    assert str(qa_failures(bad, source, QASettings())[0]).startswith("the back-translation scores chrF")
    assert qa_failures(bad, source, QASettings())[0].check == "chrf"
    strict = dataclasses.replace(QASettings(), length_ratio=(0.9, 1.1))
    assert [str(f) for f in qa_failures(good, source, strict)] == [
        "question: the translation is 0.70 times the source's length (expected 0.9 to 1.1); translate all of it and only it"
    ]


def test_the_one_pass_chrf_equals_sacrebleu_public_scores():
    from sacrebleu.metrics import CHRF

    from data_prep.llm.checks import chrf_scores

    hypotheses = ["the patient has fever", "influenza", "", "a woman broke her leg"]
    references = ["the patient has a fever", "influenza", "asthma", "the man has a cough"]
    corpus, sentences = chrf_scores(hypotheses, references)
    assert corpus == CHRF().corpus_score(hypotheses, [references]).score
    assert sentences == [CHRF().sentence_score(h, [r]).score for h, r in zip(hypotheses, references, strict=True)]
