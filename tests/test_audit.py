"""bimedix.audit: findings per file with file:line and counts, and the gate that refuses a file."""

from __future__ import annotations

import pytest

from bimedix import formats
from bimedix.audit import FileAudit, Gate, leaked_markup

GATE = Gate(max_rejected_share=0.1, max_repeated_share=0.05)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("<question>What?</question>", "<question>"),
        ("التمويل</ب>\n<c>جدار</c>", "</ب>"),
        ("[INST] hi [/INST]", "[INST]"),
        ("text <|im_start|>", "<|im_start|>"),
        ("a fever <5 days and a count > 10", None),
        ("IL-2 <-> IL-2R binding; [Na+] < 135", None),
        ("<b>bold</b> is kept? no: a single letter tag is prompt markup", "<b>"),
    ],
)
def test_leaked_markup(text, found):
    assert leaked_markup(text) == found


def audit_of(rows, fmt="mmlu_csv"):
    return formats.convert_rows(list(enumerate(rows, start=1)), fmt, label="f.csv").audit


def test_findings_name_file_lines_and_counts():
    rows = [["Which bone is longest?", "Femur", "Tibia", "Ulna", "Radius", "A"]] * 2
    rows += [["Which bone is longest?", "Stapes", "Sternum", "Clavicle", "Patella", "A"]]  # other options
    rows += [["Which gland makes insulin?", "Pancreas", "Liver", "Spleen", "Kidney", "E"]]
    audit = audit_of(rows)
    assert audit.lines() == [
        "f.csv:4: answer_not_in_options x1: answer 'E' is not one of the options A B C D",
        "f.csv:2: duplicate x1: repeats an earlier row's question and options: used once",
        "f.csv:3: repeated_question x1: repeats an earlier question with other options "
        "(most often: 'Which bone is longest?' in 2 rows)",
    ]
    summary = audit.to_dict()
    assert (summary["rows"], summary["used"], summary["rejected"], summary["repeated_questions"]) == (4, 2, 2, 1)


def test_the_gate_refuses_too_many_rejects_or_repeats_and_an_empty_file():
    clean = FileAudit("ok")
    for line in range(1, 21):
        clean.observe(line, f"q{line}", f"q{line}", 4)
    clean.reject(21, "answer_not_in_options", "answer 'E' is not one of the options")
    assert GATE.problems(clean) == []  # 1 of 21 rejected: under 10%
    repeats = FileAudit("rep")
    for line in range(1, 11):
        repeats.observe(
            line, f"item{line}", "same question" if line > 8 else f"q{line}", 4, "How is IP spoofing found?"
        )
    [problem] = GATE.problems(repeats)
    assert problem.startswith("1 of 10 rows repeat an earlier question with other options (10.0%, above the limit 5%")
    empty = FileAudit("none")
    empty.reject(1, "missing_field", "missing field 'opa'")
    assert GATE.problems(empty) == [
        "nothing usable: all 1 rows rejected (mostly missing_field, 1 rows: missing field 'opa')"
    ]
    assert GATE.problems(empty.to_dict()) == GATE.problems(empty), "the gate reads the summary a report keeps"


def test_option_counts_differ_unless_the_reader_declared_several():
    mixed = FileAudit("m")
    mixed.observe(1, "a", "a", 4)
    mixed.observe(2, "b", "b", 5)
    assert [f.code for f in mixed.findings()] == ["option_counts"]
    declared = FileAudit("d", mixed_options_ok=True)
    declared.observe(1, "a", "a", 4)
    declared.observe(2, "b", "b", 5)
    assert declared.findings() == []
