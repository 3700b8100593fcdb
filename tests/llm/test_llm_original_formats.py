"""Sources in their original formats (MedQA, MedMCQA, PubMedQA, MMLU CSV, MedArabiQ) go through bimedix.formats,
the reader data_prep and eval_tasks use."""

from __future__ import annotations

import asyncio
import json

import pytest

from bimedix.paths import ROOT
from data_prep.llm import __main__ as cli
from data_prep.llm.records import FORMATS, MCQ, QA, Reject, read_items
from data_prep.llm.translate import TranslateRun, run_translation

SAMPLES = ROOT / "data_prep" / "samples"


def test_the_cli_offers_every_format_the_reader_knows():
    assert cli.FORMATS is FORMATS and "medarabiq_csv" in FORMATS


def test_medqa_rows_become_mcq_items_with_the_answer_and_no_loss(tmp_path):
    path = tmp_path / "medqa.jsonl"
    good = {
        "question": "A 50-year-old man has chest pain.\u200f Which drug first?",
        "options": {"A": "Aspirin", "B": "Insulin", "C": "Furosemide", "D": "Heparin"},
        "answer_idx": "A",
        "answer": "Aspirin",
        "meta_info": "step1",
    }
    bad = dict(good, answer_idx="Q")
    path.write_text("\n".join([json.dumps(good), "", json.dumps(bad), "{broken", json.dumps(good)]) + "\n")
    found = list(read_items(path, "medqa"))
    assert [where.rsplit(":", 1)[1] for where, _ in found] == ["1", "3", "4", "5"]
    item = found[0][1]
    assert isinstance(item, MCQ) and item.options[item.answer_index] == "Aspirin" and item.source == "medqa"
    assert "\u200f" not in item.question  # data_prep's normalisation: bidi marks removed
    assert isinstance(found[1][1], Reject) and "answer_idx" in found[1][1].reason
    assert isinstance(found[2][1], Reject) and "invalid JSON" in found[2][1].reason
    assert isinstance(found[3][1], Reject) and "repeats line 1 (same question and options)" in found[3][1].reason


@pytest.mark.parametrize(
    ("name", "fmt", "kind"),
    [
        ("medmcqa_en.jsonl", "medmcqa", MCQ),
        ("pubmedqa_en.json", "pubmedqa", MCQ),
        ("pubmedqa_unlabelled_en.json", "pubmedqa", QA),
        ("mmlu_en/anatomy_train.csv", "mmlu_csv", MCQ),
    ],
)
def test_the_embedded_samples_read_in_their_original_formats(name, fmt, kind):
    found = [item for _, item in read_items(SAMPLES / name, fmt)]
    assert found and all(isinstance(item, kind) for item in found), found
    assert len({item.id for item in found}) == len(found)
    if kind is MCQ and fmt == "medmcqa":
        assert any(item.explanation for item in found)  # MedMCQA `exp` travels with the item
    if fmt == "pubmedqa" and kind is MCQ:
        assert all(item.context and item.options == ["yes", "no", "maybe"] for item in found)


def test_a_medqa_file_translates_to_mcq_json_that_the_data_stage_reads(fake_server, endpoint_for, settings, tmp_path):
    from bimedix.formats import SourceFile, decode, iter_rows
    from data_prep.sources import SOURCES, SourceContext

    run = TranslateRun(
        SAMPLES / "medqa_en.jsonl", "medqa", tmp_path / "run", tmp_path / "cache.sqlite", progress=False, limit=3
    )
    manifest = asyncio.run(run_translation(run, settings, endpoint_for(fake_server)))
    assert sum(manifest["items"].values()) == 3
    out = run.out / "translated.jsonl"
    rows = list(iter_rows("json", SourceFile(str(out), path=out)))
    assert rows
    for _, payload in rows:
        record = SOURCES["mcq_json"].convert(decode(payload), SourceContext(language="ar"))
        assert record.task == "mcqa" and record.language == "ar", record


def test_a_broken_original_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "ori_pqal.json"
    path.write_text('{"123": {"QUESTION": "q?",')
    with pytest.raises(ValueError, match=r"ori_pqal\.json"):
        list(read_items(path, "pubmedqa"))


def test_an_undecidable_medmcqa_file_says_how_to_declare_its_base(tmp_path):
    path = tmp_path / "medmcqa.jsonl"
    rows = [
        {"question": f"Which nerve {i}?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": i} for i in (1, 2, 3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        ValueError, match=r"medmcqa\.jsonl: cannot tell .* convert it with python -m data_prep convert --cop-base"
    ):
        list(read_items(path, "medmcqa"))


def test_the_same_file_gives_the_same_items_and_gold_options_as_eval_tasks():
    """The LLM stages and eval_tasks read one file through one reader: same questions, same gold option."""
    from eval_tasks import data

    items, _ = data.load_records("bimedix_en_medqa", data.resolve_source("sample"))
    path = ROOT / "eval_tasks" / "sample_data" / "en" / "medqa_test.jsonl"
    mine = [item for _, item in read_items(path, "medqa")]
    assert [(m.question, m.options[m.answer_index]) for m in mine] == [
        (i.question.strip(), i.options[i.answer].strip()) for i in items
    ]
