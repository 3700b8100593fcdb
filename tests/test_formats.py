"""bimedix.formats: the one reader per layout, its probe, its rejects, and that every stage gets the same items."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import pytest

from bimedix import formats
from bimedix.formats import Context, FormatError, Item, Reject, SourceFile, decode, iter_rows
from bimedix.formats.layouts import probe_medmcqa
from bimedix.paths import ROOT

MEDQA = {
    "question": "A 32-year-old man taking isoniazid has numbness in both feet. Which supplement would have prevented it?",
    "answer": "Pyridoxine",
    "options": {"A": "Thiamine", "B": "Pyridoxine", "C": "Cobalamin", "D": "Folic acid"},
    "answer_idx": "B",
    "meta_info": "step1",
}


def convert(fmt: str, row, ctx: Context | None = None, line: int = 7):
    return formats.FORMATS[fmt].convert(row, ctx or Context(), line)


# ---------------------------------------------------------------------------------------------
# The reader


def rows_of(kind: str, path: Path):
    return [(line, decode(payload)) for line, payload in iter_rows(kind, SourceFile(path.name, path=path))]


def test_json_lines_keep_line_numbers_skip_blank_lines_and_reject_bad_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n  \n{"a": 2\n{"a": "\xff"}\n{"a": 3}')
    rows = rows_of("jsonl", path)
    assert [line for line, _ in rows] == [1, 4, 5, 6]
    assert rows[0][1] == {"a": 1} and rows[3][1] == {"a": 3}
    assert rows[1][1].code == "invalid_json" and rows[2][1].code == "undecodable"
    assert rows[2][1].reason == "not valid UTF-8 (byte 8 of the line is 0xff)"


def test_csv_rows_start_on_their_own_line_even_after_a_quoted_newline(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('q1,a,b,c,d,A\n"two\nlines",a,b,c,d,B\n\nq3,a,b,c,d,C\n', encoding="utf-8")
    assert [(line, row[0]) for line, row in rows_of("csv", path)] == [(1, "q1"), (2, "two\nlines"), (5, "q3")]


def test_a_csv_with_a_header_gives_rows_by_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('\ufeffQuestion,Answer,Category\n"q\nأ. x",أ. x,Anatomy\nonly,two\n', encoding="utf-8")
    rows = rows_of("csv_header", path)
    assert rows[0] == (2, {"Question": "q\nأ. x", "Answer": "أ. x", "Category": "Anatomy"})
    assert rows[1][0] == 4 and rows[1][1].code == "column_count"


def test_json_documents_give_items_their_line_and_key(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps([{"q": 1}, {"q": 2}], indent=2))
    assert rows_of("json", array) == [(2, {"q": 1}), (5, {"q": 2})]
    keyed = tmp_path / "d.json"
    keyed.write_text(json.dumps({"111": {"Q": "a"}, "222": {"Q": "b"}}, indent=1))
    assert rows_of("json_dict", keyed) == [(2, {"Q": "a", "_key": "111"}), (5, {"Q": "b", "_key": "222"})]
    lines = tmp_path / "l.json"
    lines.write_text('{"q": 1}\n{"q": 2}\n')
    assert rows_of("json", lines) == [(1, {"q": 1}), (2, {"q": 2})]


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("json", '[\n  {"q": 1},\n  {"q": 2\n  {"q": 3}\n]', r"x\.json:4: invalid JSON"),
        ("json_dict", '\n[{"a": 1}]', r"x\.json:2: expected one JSON object keyed by id"),
        ("json", '[{"q": 1}] trailing', "unexpected text after the end"),
    ],
)
def test_a_broken_json_document_is_one_line_naming_the_line(tmp_path, kind, text, message):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        list(iter_rows(kind, SourceFile("x.json", path=path)))


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(FormatError, match=r"nope\.jsonl: no such file"):
        list(iter_rows("jsonl", SourceFile("nope.jsonl", path=tmp_path / "nope.jsonl")))


# ---------------------------------------------------------------------------------------------
# MedMCQA's cop base


@pytest.mark.parametrize(
    ("cops", "declared", "result"),
    [
        ([0, 1, 2, 3], None, 0),
        ([1, 2, 3, 4], None, 1),
        (["4", 2], None, 1),
        (["٤", 2], None, 1),
        ([1, 2, 3], 1, 1),
        ([0, 4], None, "ambiguous"),
        ([1, 2, 3], None, "cannot tell .* its 3 labelled rows have cop 1: 1, cop 2: 1, cop 3: 1 and no cop 0 or 4"),
        ([0, 1], 1, "cop_base 1 .* contradicts the file: cop 0 occurs in 1 of its 2 labelled rows"),
        ([3, 4], 0, "cop_base 0 .* contradicts the file: cop 4 occurs"),
    ],
)
def test_medmcqa_probe_detects_and_refuses(cops, declared, result):
    rows = [{"opa": "x", "cop": c} for c in cops]
    params = {} if declared is None else {"cop_base": declared}
    if isinstance(result, int):
        assert probe_medmcqa(rows, params)["cop_base"] == result
    else:
        with pytest.raises(FormatError, match=result):
            probe_medmcqa(rows, params)


def test_medmcqa_probe_leaves_files_without_medmcqa_rows_to_the_row_checks():
    """A MedQA file read as MedMCQA: no 'opa' anywhere; the rows are rejected naming the field instead."""
    assert probe_medmcqa([MEDQA, MEDQA], {})["cop_base"] is None
    read = formats.convert_rows([(1, MEDQA), (2, MEDQA)], "medmcqa", label="medqa.jsonl")
    assert [r.reason for _, r in read.rejects] == ["missing field 'opa'"] * 2


def test_medmcqa_probe_uses_the_undecided_base_only_when_the_file_cannot_tell():
    undecided = probe_medmcqa([{"opa": "x", "cop": c} for c in (1, 2, 3)], {"undecided_base": 1})
    assert undecided["cop_base"] == 1 and "undecided" in undecided["cop_evidence"]
    assert probe_medmcqa([{"opa": "x", "cop": 0}], {"undecided_base": 1})["cop_base"] == 0


# ---------------------------------------------------------------------------------------------
# The layouts


def test_medqa_four_and_five_options_are_read_and_their_count_recorded():
    four = convert("medqa", MEDQA)
    assert isinstance(four, Item) and (four.answer, four.letter, len(four.options), four.line) == (1, "B", 4, 7)
    five = convert(
        "medqa", {**MEDQA, "options": {**MEDQA["options"], "E": "Biotin"}, "answer_idx": "E", "answer": "Biotin"}
    )
    assert (five.letter, len(five.options)) == ("E", 5)
    scored = Context(option_counts=(4,), option_counts_of="task bimedix_en_medqa")
    assert convert("medqa", MEDQA, scored).letter == "B"
    assert convert("medqa", {**MEDQA, "options": {**MEDQA["options"], "E": "x"}}, scored) == Reject(
        "option_count", "5 options, but task bimedix_en_medqa scores 4-option questions"
    )
    read = formats.convert_rows(
        [(1, MEDQA), (2, {**MEDQA, "question": "Q2?", "options": {**MEDQA["options"], "E": "x"}})], "medqa", label="m"
    )
    assert read.audit.option_counts() == {4: 1, 5: 1} and read.audit.findings()[-1].code == "option_counts"


def test_medqa_by_answer_text_and_as_a_list():
    item = convert("medqa", {"question": "Q?", "options": ["Thiamine", "Pyridoxine"], "answer": "pyridoxine"})
    assert item.answer == 1
    assert convert("medqa", {**MEDQA, "answer_idx": "2"}).code == "answer_not_in_options", "a digit is not a letter"


def test_medqa_hf_layout():
    row = {"sent1": "Which?", "ending0": "a", "ending1": "b", "ending2": "c", "ending3": "d", "label": 2}
    assert convert("medqa_hf", row).letter == "C"


def test_pubmedqa_layouts():
    pqal = {
        "QUESTION": "Does it help?",
        "CONTEXTS": ["A.", "B."],
        "final_decision": "maybe",
        "LONG_ANSWER": "Maybe.",
        "_key": "9",
    }
    item = convert("pubmedqa", pqal)
    assert (item.yes_no_maybe, item.options, item.answer, item.context, item.id) == (
        True,
        ("yes", "no", "maybe"),
        2,
        "A.\nB.",
        "9",
    )
    assert convert("pubmedqa", {k: v for k, v in pqal.items() if k != "final_decision"}).kind == "qa"
    hub = convert(
        "pubmedqa", {"pubid": 3, "question": "هل يفيد؟", "context": {"contexts": ["ا"]}, "final_decision": "نعم"}
    )
    assert (hub.options, hub.answer, hub.language) == (("نعم", "لا", "ربما"), 0, "ar")
    scored = convert("pubmedqa", {k: v for k, v in pqal.items() if k != "final_decision"}, Context(yes_no_maybe=True))
    assert scored.code == "missing_field" and "unlabelled" in scored.reason


def test_mmlu_rows_hub_layouts_and_a_header_row():
    row = ["Which muscle is the main muscle of inspiration?", "Intercostals", "Diaphragm", "Scalenes", "Platysma", "B"]
    assert convert("mmlu_csv", row).answer == 1
    assert convert("mmlu_csv", ["question", "A", "B", "C", "D", "answer"]).code == "header_row"
    assert convert("mmlu_csv", {"question": row[0], "choices": row[1:5], "answer": 1}).answer == 1
    assert (
        convert("mmlu_csv", {"Question": row[0], "A": "a", "B": "b", "C": "c", "D": "d", "Answer": "(ب)"}).answer == 1
    )
    assert convert("mmlu_csv", [*row[:5], "2"]).code == "answer_not_in_options"


def test_the_normalised_mcq_in_its_three_option_shapes_and_as_yes_no_maybe():
    base = {"question": "Pick one.", "answer": "(B)", "explanation": "Because.", "language": "en", "id": 12}
    for options in ("(A) a\n(B) b\nstill b", ["a", "b\nstill b"], {"A": "a", "B": "b\nstill b"}):
        item = convert("mcq_json", {**base, "options": options})
        assert (item.options, item.answer, item.explanation, item.id) == (("a", "b\nstill b"), 1, "Because.", "12")
    assert convert("mcq_json", {**base, "options": "(أ) الأولى\n(ب) الثانية", "answer": "ب"}).answer == 1
    assert convert("mcq_json", {**base, "options": "(A) a\n(B) b", "language": "fr"}).code == "bad_type"
    pubmed = {
        "question": "Does it work?",
        "options": "(A) No\n(B) Yes\n(C) Maybe",
        "answer": "(B)",
        "context": "Abstract.",
    }
    as_label = convert("mcq_json", pubmed, Context(yes_no_maybe=True))
    assert (as_label.options, as_label.answer, as_label.yes_no_maybe) == (("yes", "no", "maybe"), 0, True)
    assert (
        convert("mcq_json", {**pubmed, "options": "(A) a\n(B) b\n(C) c"}, Context(yes_no_maybe=True)).code
        == "bad_options"
    )
    assert "cannot feed" in convert("pubmedqa", {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "yes"},
                                    Context(yes_no_maybe=False, option_counts=(4,))).reason  # fmt: skip


def test_qa_and_chat_lines():
    qa = convert("qa_jsonl", {"question": "What is HbA1c?", "answer": "Glycated haemoglobin.", "id": "q1"})
    assert (qa.kind, qa.answer_text, qa.id) == ("qa", "Glycated haemoglobin.", "q1")
    chat = convert(
        "chat_jsonl", {"messages": [{"role": "user", "content": "مرحبا"}, {"role": "assistant", "content": "أهلا"}]}
    )
    assert (chat.kind, chat.language, len(chat.messages)) == ("chat", "ar", 2)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {
                "Question": "أي العظام التالية يقع في الساعد؟\nأ. الفخذ\nب. الزند\nج. الظنبوب\nد. الشظية",
                "Answer": "ب. الزند",
                "Category": "Anatomy",
            },
            ("أي العظام التالية يقع في الساعد؟", 4, 1, "Anatomy"),
        ),
        (  # five options, the answer as text only, an option running over two lines
            {
                "Question": "ما سبب الكزاز؟\nأ) المكورات\nب) المطثية\nالكزازية\nج) الفيروسات\nد) الفطريات\nه) الطفيليات",
                "Answer": "المطثية الكزازية",
                "Category": "",
            },
            ("ما سبب الكزاز؟", 5, 1, None),
        ),
    ],
)
def test_medarabiq_rows(row, expected):
    item = convert("medarabiq_csv", row)
    assert (item.question, len(item.options), item.answer, item.subject) == expected
    assert item.language == "ar"


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"Question": "سؤال بلا خيارات", "Answer": "أ. شيء"}, "bad_options"),
        ({"Question": "س؟\nأ. نعم\nب. لا", "Answer": "ج. ربما"}, "answer_not_in_options"),
        ({"Question": "س؟\nأ. نعم\nب. لا", "Answer": "أ. لا"}, "answer_mismatch"),
        ({"Question": "أ. نعم\nب. لا", "Answer": "أ. نعم"}, "missing_field"),
    ],
)
def test_medarabiq_rows_that_cannot_be_scored(row, code):
    assert convert("medarabiq_csv", row).code == code


def test_a_medarabiq_file_with_its_bom_and_header(tmp_path):
    path = tmp_path / "multiple-choice-questions.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Question", "Answer", "Category"])
        writer.writerow(
            [
                "ما وظيفة الأنسولين؟\nأ. خفض سكر الدم\nب. رفع ضغط الدم\nج. الهضم\nد. التنفس",
                "أ. خفض سكر الدم",
                "Physiology",
            ]
        )
    read = formats.read_file(path, "medarabiq_csv", Context(language="ar"))
    assert [(i.line, i.letter, i.subject) for i in read.items] == [(2, "A", "Physiology")]


def test_a_declared_language_rejects_rows_in_the_other_script():
    assert convert("medqa", MEDQA, Context(language="ar")) == Reject(
        "language_mismatch", "the question is written in English but the source is declared Arabic"
    )


def test_leaked_markup_is_rejected():
    leaked = {**MEDQA, "options": {**MEDQA["options"], "B": "Pyridoxine</b>\n<c>x</c>\n<question>Another?</question>"}}
    assert convert("medqa", {**leaked, "answer": None}).code == "leaked_markup"


def test_a_later_copy_is_used_once_and_a_conflicting_gold_answer_is_named():
    rows = [
        (1, MEDQA),
        (2, {**MEDQA, "question": MEDQA["question"].upper()}),
        (3, {**MEDQA, "answer_idx": "A", "answer": "Thiamine"}),
    ]
    read = formats.convert_rows(rows, "medqa", label="m.jsonl")
    assert [i.line for i in read.items] == [1]
    assert [(line, r.code) for line, r in read.rejects] == [(2, "duplicate"), (3, "duplicate")]
    assert (
        read.rejects[1][1].reason
        == "repeats line 1 (same question and options); its gold answer differs (A 'Thiamine' here, B 'Pyridoxine' there): line 1 is used"
    )


def test_hub_layouts_are_detected_from_their_columns():
    assert formats.detect_layout({"Question": "", "opa": 1, "opb": 1, "opc": 1, "opd": 1, "cop": 1}, "x") == "medmcqa"
    assert formats.detect_layout({"question": "", "options": {"A": 1}, "answer": "a"}, "x") == "medqa"
    assert formats.detect_layout({"question": "", "options": "(A) a", "answer": "(A)"}, "x") == "mcq_json"
    with pytest.raises(FormatError, match="columns found: label_id, text"):
        formats.detect_layout({"text": "", "label_id": 1}, "x")


# ---------------------------------------------------------------------------------------------
# One reader for every stage


def test_every_stage_gets_the_same_items_and_gold_letters_from_one_file(tmp_path):
    """data_prep convert, eval_tasks and the LLM stages read the same MedMCQA file (0-based, a duplicate,
    a bad row): the same rows survive, with the same gold letter."""
    from data_prep.llm.records import read_items
    from data_prep.sources import SOURCES, SourceContext
    from eval_tasks import data

    cops = [0, 3, 1, 2, 0]
    rows = [{"question": f"Which structure number {i} is described?", "opa": "Alpha", "opb": "Beta", "opc": "Gamma",
             "opd": "Delta", "cop": c} for i, c in enumerate(cops)]  # fmt: skip
    rows.append(rows[1])  # a duplicate
    rows.append({**rows[2], "question": "Another question?", "cop": 7})  # not an option
    path = tmp_path / "medmcqa_dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    expected = ["A", "D", "B", "C", "A"]

    (tmp_path / "index.yaml").write_text(
        "- {task: bimedix_en_medmcqa, language: en, path: medmcqa_dev.jsonl, format: medmcqa}\n", encoding="utf-8"
    )
    items, _ = data.load_records("bimedix_en_medmcqa", data.resolve_source(str(tmp_path)))
    assert [i.letter for i in items] == expected

    fmt = SOURCES["medmcqa"]
    read = formats.read_file(path, fmt.layout)
    ctx = SourceContext(params=read.params)
    records = [fmt.convert(row, ctx) for _, row in formats.read_rows(path, "medmcqa")]
    letters = [r.metadata["answer_letter"] for r in records if not isinstance(r, Reject)]
    assert letters[:5] == expected and [i.letter for i in read.items] == expected

    llm = [item for _, item in read_items(path, "medmcqa") if not hasattr(item, "reason")]
    assert ["ABCD"[m.answer_index] for m in llm] == expected


# ---------------------------------------------------------------------------------------------
# Floors: the shared package imports no stage; parsing lives in bimedix/formats only

STAGES = ("data_prep", "eval_tasks", "serve", "recipes", "benchmarks", "demo")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_shared_package_imports_no_stage():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] in STAGES)
        for path in sorted((ROOT / "bimedix").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_build_and_card_do_not_import_each_other_and_eval_tasks_uses_no_data_prep_internals():
    assert "data_prep.card" in imported_modules(ROOT / "data_prep" / "build.py")
    assert "data_prep.build" not in imported_modules(ROOT / "data_prep" / "card.py")
    for path in (ROOT / "eval_tasks").glob("*.py"):
        assert not {m for m in imported_modules(path) if m.startswith("data_prep")}, path.name


@pytest.mark.parametrize("field", ['"opa"', '"cop"', '"answer_idx"', '"final_decision"', '"CONTEXTS"', '"sent1"'])
def test_benchmark_fields_are_named_only_in_the_format_layer(field):
    """Nothing outside bimedix/formats parses a benchmark layout (the samples and tests write them)."""
    code = [
        p for stage in ("data_prep", "eval_tasks") for p in (ROOT / stage).rglob("*.py") if "testing" not in p.parts
    ]
    assert [str(p.relative_to(ROOT)) for p in code if field in p.read_text(encoding="utf-8")] == []
