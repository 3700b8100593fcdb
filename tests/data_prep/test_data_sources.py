"""Sources as training records (bimedix.formats items -> Record | Reject), the prompts and the mix files.

The layouts themselves (readers, probes, rejects of every layout) are tested in tests/test_formats.py."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2.ext  # noqa: F401  (bimedix.chat.render needs it imported; see data_prep/README.md)
import pytest

from bimedix.chat import render
from bimedix.formats import SourceFile, decode, iter_rows
from data_prep.config import load_mix, source_files
from data_prep.prompts import load_prompts
from data_prep.records import DataPrepError, Record, Reject
from data_prep.sources import SOURCES, SourceContext

CTX = SourceContext(source="test", seed=1234)
MEDQA = {
    "question": "A 32-year-old man taking isoniazid has numbness in both feet. Which supplement would have prevented it?",
    "answer": "Pyridoxine",
    "options": {"A": "Thiamine", "B": "Pyridoxine", "C": "Cobalamin", "D": "Folic acid"},
    "answer_idx": "B",
    "meta_info": "step1",
}


def convert(fmt: str, row, ctx: SourceContext = CTX):
    return SOURCES[fmt].convert(row, ctx)


def test_medqa_becomes_one_user_and_one_assistant_turn():
    record = convert("medqa", MEDQA)
    assert isinstance(record, Record)
    assert (record.task, record.language) == ("mcqa", "en")
    user, assistant = record.messages
    assert user["role"] == "user" and assistant["role"] == "assistant"
    assert MEDQA["question"] in user["content"] and "(B) Pyridoxine" in user["content"]
    assert "(B) Pyridoxine" in assistant["content"]
    meta = record.metadata
    assert (meta["label"], meta["answer_letter"], meta["options"][1], meta["meta_info"]) == (
        1,
        "B",
        "Pyridoxine",
        "step1",
    )
    assert meta["phrasing"] in {p.id for p in load_prompts().mcqa["en"].phrasings}
    assert record.probe_text.startswith(MEDQA["question"]) and "Folic acid" in record.probe_text
    assert render(record.messages).startswith("<s>[INST] ")


def test_arabic_questions_get_arabic_option_letters():
    row = {**MEDQA, "question": "ما المكمّل الذي يمنع اعتلال الأعصاب الناتج عن الإيزونيازيد؟", "answer": "البيريدوكسين",
           "options": {"A": "الثيامين", "B": "البيريدوكسين", "C": "الكوبالامين", "D": "حمض الفوليك"}}  # fmt: skip
    record = convert("medqa", row)
    assert record.language == "ar"
    assert "(أ) الثيامين" in record.messages[0]["content"] and "(ب) البيريدوكسين" in record.messages[1]["content"]
    assert record.metadata["answer_letter"] == "ب"


def test_the_phrasing_is_chosen_by_seed_and_question():
    seen = {convert("medqa", MEDQA, SourceContext(seed=seed)).metadata["phrasing"] for seed in range(40)}
    assert len(seen) == 3
    assert convert("medqa", MEDQA).messages == convert("medqa", MEDQA).messages


def test_medmcqa_explanation_and_cop_base():
    row = {"question": "Koplik spots are seen in:", "opa": "Mumps", "opb": "Rubella", "opc": "Chickenpox", "opd": "Measles",
           "cop": 4, "exp": "They appear before the rash.", "subject_name": "Pediatrics", "id": "x1"}  # fmt: skip
    record = convert("medmcqa", row, SourceContext(params={"cop_base": 1}))
    assert record.metadata["answer_letter"] == "D" and record.metadata["subject"] == "Pediatrics"
    assert record.messages[1]["content"].endswith("Explanation: They appear before the rash.")
    assert record.metadata["has_explanation"] is True
    zero_based = convert("medmcqa", {**row, "cop": 3}, SourceContext(params={"cop_base": 0}))
    assert zero_based.metadata["answer_letter"] == "D"
    no_exp = convert("medmcqa", row, SourceContext(params={"cop_base": 1}, explanations=False))
    assert "Explanation" not in no_exp.messages[1]["content"]
    out_of_range = convert("medmcqa", {**row, "cop": 4}, SourceContext(params={"cop_base": 0}))
    assert out_of_range == Reject("answer_not_in_options", "cop 4 is not in 0..3 (0-based)")
    assert convert("medmcqa", {**row, "cop": 4}, SourceContext(params={"cop_base": 1})).metadata["source_id"] == "x1"


PQAL = {"QUESTION": "Does early mobilisation shorten hospital stay?", "CONTEXTS": ["Background.", "Results."],
        "final_decision": "yes", "LONG_ANSWER": "It did, by two days.", "_key": "90000005"}  # fmt: skip


def test_pubmedqa_labelled_unlabelled_arabic_and_hub_layouts():
    labelled = convert("pubmedqa", PQAL)
    assert labelled.task == "mcqa" and labelled.metadata["options"] == ["yes", "no", "maybe"]
    assert labelled.metadata["source_id"] == "90000005"
    assert "Background.\nResults." in labelled.messages[0]["content"]
    assert labelled.messages[1]["content"].endswith("It did, by two days.")
    unlabelled = convert("pubmedqa", {k: v for k, v in PQAL.items() if k != "final_decision"})
    assert unlabelled.task == "qa" and unlabelled.messages[1]["content"] == "It did, by two days."
    arabic = convert("pubmedqa", {**PQAL, "QUESTION": "هل يقصّر التحريك المبكر مدة الإقامة؟", "final_decision": "نعم"})
    assert (
        arabic.language == "ar"
        and arabic.metadata["options"] == ["نعم", "لا", "ربما"]
        and arabic.metadata["label"] == 0
    )
    hub = convert("pubmedqa", {"pubid": 1, "question": PQAL["QUESTION"], "context": {"contexts": ["Background."]},
                               "long_answer": "Yes.", "final_decision": "maybe"})  # fmt: skip
    assert hub.metadata["answer_letter"] == "C" and hub.metadata["source_id"] == "1"


def test_mmlu_rows_from_csv_and_from_the_hub_layout():
    csv_row = [
        "Which muscle is the main muscle of inspiration?",
        "Intercostals",
        "Diaphragm",
        "Scalenes",
        "Platysma",
        "B",
    ]
    assert convert("mmlu_csv", csv_row).metadata["label"] == 1
    arabic = ["أي العضلات هي العضلة الرئيسية للشهيق؟", "الوربية", "الحجاب الحاجز", "الأخمعية", "الجلدية", "ب"]
    assert convert("mmlu_csv", arabic).metadata["answer_letter"] == "ب"
    hub = {"question": csv_row[0], "choices": csv_row[1:5], "answer": 1, "subject": "anatomy"}
    assert convert("mmlu_csv", hub).metadata == convert("mmlu_csv", csv_row).metadata | {"subject": "anatomy"}


def test_mcq_json_options_lines_continue_and_arabic_letters():
    row = {
        "question": "Pick one.",
        "options": "(A) first line\ncontinued here\n(B) second\n(C) third",
        "answer": "B",
        "context": "",
    }
    record = convert("mcq_json", row)
    assert record.metadata["options"] == ["first line\ncontinued here", "second", "third"]
    assert record.metadata["label"] == 1
    arabic = {"question": "اختر واحدة.", "options": "(أ) الأولى\n(ب) الثانية", "answer": "(ب)"}
    assert convert("mcq_json", arabic).metadata["label"] == 1


def test_chat_keeps_turns_and_a_system_message():
    row = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is paracetamol safe?"},
                        {"role": "assistant", "content": "Yes, at the usual dose."}, {"role": "user", "content": "ما الجرعة؟"},
                        {"role": "assistant", "content": "4 g a day at most for adults."}]}  # fmt: skip
    record = convert("chat_jsonl", row)
    assert record.task == "chat" and record.language == "en" and record.messages == row["messages"]
    assert record.probe_text == "Is paracetamol safe?\nما الجرعة؟"
    assert record.metadata["turns"] == 2


@pytest.mark.parametrize(
    ("fmt", "row", "code", "words"),
    [
        ("medqa", {k: v for k, v in MEDQA.items() if k != "question"}, "missing_field", "'question'"),
        ("medqa", {**MEDQA, "question": "  "}, "empty_field", "'question' is empty"),
        ("medqa", {**MEDQA, "answer_idx": "E"}, "answer_not_in_options", "'E'"),
        ("medqa", {**MEDQA, "answer": "Biotin"}, "answer_mismatch", "option B"),
        ("medqa", {**MEDQA, "options": {"A": "x", "C": "y"}}, "bad_options", "AC"),
        ("medqa", {**MEDQA, "options": {"A": "x", "B": 3.5, "C": None}}, "missing_field", "options.C"),
        ("medqa", {**MEDQA, "question": ["not", "text"]}, "bad_type", "'question'"),
        ("medqa", {**MEDQA, "question": "bad \udcff byte"}, "undecodable", "'question'"),
        ("medqa", "a string", "not_an_object", "got str"),
        (
            "medqa",
            {
                **MEDQA,
                "question": "١٢٣ + ٤٥٦ = ؟",
                "options": {"A": "579", "B": "٥٨٠"},
                "answer": None,
                "answer_idx": "A",
            },
            "no_letters",
            "no letters",
        ),
        ("mmlu_csv", ["q", "a", "b", "c", "d"], "column_count", "got 5"),
        ("mmlu_csv", ["q", "a", "b", "c", "d", "F"], "answer_not_in_options", "'F'"),
        ("mcq_json", {"question": "q", "options": "(A) a\n(C) c", "answer": "(A)"}, "bad_options", "in order"),
        ("mcq_json", {"question": "q", "options": "just text", "answer": "(A)"}, "bad_options", "(A) ..."),
        ("mcq_json", {"question": "q", "options": "(A) a\n(B) b", "answer": "(C)"}, "answer_not_in_options", "(C)"),
        ("mcq_json", {"question": "q", "options": "(A) a\n(B) ", "answer": "(A)"}, "empty_field", "option B"),
        (
            "chat_jsonl",
            {"messages": [{"role": "assistant", "content": "hi"}]},
            "bad_messages",
            "expected system or user",
        ),
        ("chat_jsonl", {"messages": [{"role": "user", "content": "hi"}]}, "bad_messages", "last message"),
        ("chat_jsonl", {"messages": [{"role": "user", "content": "hi"}, "oops"]}, "bad_messages", "messages[1]"),
        ("qa_jsonl", {"question": "What is HbA1c?"}, "missing_field", "'answer'"),
        ("pubmedqa", {**PQAL, "final_decision": "perhaps"}, "answer_not_in_options", "perhaps"),
        ("pubmedqa", {"QUESTION": "q?", "final_decision": "yes"}, "missing_field", "context"),
    ],
)
def test_bad_rows_become_rejects_naming_the_problem(fmt, row, code, words):
    result = convert(fmt, row)
    assert isinstance(result, Reject), result
    assert result.code == code and words in result.reason, result


def test_a_declared_language_rejects_rows_in_the_other_script():
    result = convert("medqa", MEDQA, SourceContext(language="ar"))
    assert result == Reject("language_mismatch", "the question is written in English but the source is declared Arabic")


def test_every_registered_format_has_a_sample_and_a_reader():
    """Every training format has an embedded sample in the bilingual mix; MedArabiQ is a benchmark (its
    layout is read by `convert` and eval_tasks, tested in tests/test_formats.py), never a training sample."""
    mix = load_mix(Path(__file__).resolve().parents[2] / "data_prep" / "mixes" / "bilingual.yaml")
    assert {spec.format for spec in mix.sources} == set(SOURCES) - {"medarabiq_csv"}


# ---------------------------------------------------------------------------------------------
# The hub path


def test_hub_rows_come_through_datasets(tmp_path):
    """The hub path streams with datasets.load_dataset; a local dataset folder runs it offline."""
    folder = tmp_path / "medqa_copy"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(MEDQA) + "\n" + json.dumps({**MEDQA, "answer_idx": "Z"}) + "\n")
    rows = list(iter_rows("jsonl", SourceFile("local", hub=str(folder), split="train")))
    assert [line for line, _ in rows] == [1, 2]
    results = [SOURCES["medqa"].convert(decode(row), CTX) for _, row in rows]
    assert isinstance(results[0], Record) and results[1].code == "answer_not_in_options"


# ---------------------------------------------------------------------------------------------
# Prompts and mixes


def test_prompt_files_refuse_unknown_placeholders(tmp_path):
    source = Path(__file__).resolve().parents[2] / "data_prep" / "prompts"
    (tmp_path / "qa.yaml").write_text((source / "qa.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    text = (source / "mcqa.yaml").read_text(encoding="utf-8").replace("{letter}) {answer}", "{leter}) {answer}", 1)
    (tmp_path / "mcqa.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(
        DataPrepError, match=r"mcqa\.yaml: en\.phrasings\[0\]\.assistant: unknown placeholder \['leter'\]"
    ):
        load_prompts(tmp_path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "name: m\nsources:\n  - {name: a, format: medqa, path: x.jsonl, wieght: 1}\n",
            "sources[0]: unknown key 'wieght'",
        ),
        ("name: m\nsources:\n  - {name: a, format: medqa3, path: x.jsonl}\n", "unknown format 'medqa3'"),
        (
            "name: m\nsources:\n  - {name: a, format: medqa, path: x.jsonl, hub: a/b}\n",
            "exactly one of 'path' and 'hub'",
        ),
        ("name: m\nsources:\n  - {name: a, format: medqa, path: x.jsonl, weight: 0}\n", "weight must be > 0"),
        ("name: m\nsources:\n  - {name: a, format: medqa, path: x.jsonl, cop_base: 1}\n", "medmcqa format only"),
        ("name: m\nlanguage_ratio: {ar: 1}\nsources:\n  - {name: a, format: medqa, path: x.jsonl}\n", "language_ratio"),
        ("name: m\nseed: one\nsources: []\n", "seed: expected int"),
        ("name: ../m\nsources:\n  - {name: a, format: medqa, path: x.jsonl}\n", "plain folder name"),
        ("name: m\nsources:\n  - {name: a, format: medqa\n", "invalid YAML"),
    ],
)
def test_bad_mix_files_are_one_line_naming_the_key(tmp_path, body, message):
    path = tmp_path / "mix.yaml"
    path.write_text(body)
    with pytest.raises(DataPrepError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        load_mix(path)


def test_mix_paths_are_relative_to_the_mix_and_may_use_variables_and_globs(tmp_path, monkeypatch):
    (tmp_path / "raw").mkdir()
    for name in ("b_test.csv", "a_test.csv"):
        (tmp_path / "raw" / name).write_text("q,a,b,c,d,A\n")
    path = tmp_path / "mix.yaml"
    path.write_text(
        "name: m\nsources:\n  - {name: a, format: mmlu_csv, path: 'raw/*_test.csv'}\n"
        "  - {name: b, format: mmlu_csv, path: '$RAW_DIR/a_test.csv'}\n  - {name: c, format: mmlu_csv, path: '$NOT_SET/x.csv'}\n"
    )
    monkeypatch.setenv("RAW_DIR", str(tmp_path / "raw"))
    mix = load_mix(path)
    assert [f.path.name for f in source_files(mix.sources[0], mix)] == ["a_test.csv", "b_test.csv"]
    assert source_files(mix.sources[1], mix)[0].path == tmp_path / "raw" / "a_test.csv"
    with pytest.raises(DataPrepError, match=r"uses \$NOT_SET, which is not set"):
        source_files(mix.sources[2], mix)


MIX_FILES = sorted((Path(__file__).resolve().parents[2] / "data_prep").glob("mixes/**/*.yaml"))


@pytest.mark.parametrize("path", MIX_FILES, ids=lambda p: p.name)
def test_every_shipped_mix_loads(path):
    mix = load_mix(path)
    assert mix.sources and len({s.name for s in mix.sources}) == len(mix.sources)


def test_a_hub_entry_may_name_a_local_dataset_folder(tmp_path):
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "train.jsonl").write_text(json.dumps(MEDQA) + "\n")
    path = tmp_path / "mix.yaml"
    path.write_text(
        "name: m\nsources:\n  - {name: a, format: medqa, hub: copy}\n  - {name: b, format: medqa, hub: owner/name, split: dev}\n"
    )
    mix = load_mix(path)
    local, remote = source_files(mix.sources[0], mix)[0], source_files(mix.sources[1], mix)[0]
    assert local.hub == str(tmp_path / "copy") and local.path is None
    assert (remote.hub, remote.split, remote.label) == ("owner/name", "dev", "hf://owner/name[dev]")
