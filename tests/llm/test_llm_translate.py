"""Translation end to end through real HTTP: checks, repair rounds with the failure named, queue, outputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from data_prep.llm.records import parse_chat, parse_mcq, parse_qa
from data_prep.llm.testing.fake_server import FakeServer
from data_prep.llm.translate import TranslateRun, run_translation

# Not `from conftest import`: with several tests/*/conftest.py the name `conftest` is ambiguous.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def translate(server, endpoint_for, settings, tmp_path, source="mcq_small.jsonl", fmt="mcq_json", **options):
    run = TranslateRun(FIXTURES / source, fmt, tmp_path / "run", tmp_path / "cache.sqlite", progress=False, **options)
    manifest = asyncio.run(run_translation(run, settings, endpoint_for(server)))
    return manifest, run.out


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_mcq_items_are_translated_field_by_field_and_keep_their_structure(
    fake_server, endpoint_for, settings, tmp_path
):
    manifest, out = translate(fake_server, endpoint_for, settings, tmp_path)
    assert manifest["items"] == {"machine": 3}
    assert manifest["input_rejects"] == 6
    translated = {row["id"]: row for row in rows(out / "translated.jsonl")}
    assert set(translated) == {"t-001-ar", "t-002-ar", "t-003-ar"}
    for row in translated.values():
        item = parse_mcq(row)  # the data stage's mcq_json shape, read back
        assert item.language == "ar" and row["provenance"]["status"] == "machine"
    first = translated["t-001-ar"]
    assert first["answer"] == "(A)" and first["options"].count("\n") == 3  # four options, letters kept
    for kept in ["150/90 mmHg", "ECG", "ST", "45"]:
        assert kept in first["question"]
    assert "احتشاء عضلة القلب" in first["options"]  # the glossary term
    second = translated["t-002-ar"]
    assert (
        "(B) Metformin 500 mg" in second["options"] and "HbA1c" in second["question"] and "8.5%" in second["question"]
    )
    provenance = first["provenance"]
    assert provenance["source_id"] == "t-001" and provenance["model"] == "fake-model" and provenance["rounds"] == 1
    assert provenance["scores"]["chrf"] >= settings.translate.qa.min_chrf


def test_bad_input_rows_are_rejected_with_file_line_and_reason(fake_server, endpoint_for, settings, tmp_path):
    _, out = translate(fake_server, endpoint_for, settings, tmp_path)
    reasons = {row["where"].rsplit("/", 1)[-1]: row["reason"] for row in rows(out / "rejects.jsonl")}
    assert reasons == {
        "mcq_small.jsonl:4": "the item is in 'ar'; translation takes English input",
        "mcq_small.jsonl:5": "1 options; 2 to 5 are supported (option_count)",
        "mcq_small.jsonl:6": "duplicate id 't-001' (first at " + str(FIXTURES / "mcq_small.jsonl") + ":1)",
        "mcq_small.jsonl:7": "text contains '⟦', which the translation format reserves",
        "mcq_small.jsonl:8": "answer '(E)' is not one of the options A B (answer_not_in_options)",
        "mcq_small.jsonl:9": "invalid JSON (unexpected control character in string at character 26 of the line) (invalid_json)",
    }


def test_a_failed_check_is_named_in_the_next_round(fake_server, endpoint_for, settings, tmp_path):
    _, out = translate(fake_server, endpoint_for, settings, tmp_path)
    ledger = {row["id"]: row for row in rows(out / "ledger.jsonl")}
    repaired = ledger["t-003"]
    assert repaired["status"] == "machine" and repaired["rounds"] == 2
    assert repaired["history"][0]["reasons"] == [
        "question: only 57% of the letters are Arabic (at least 60% needed)",
        "question: untranslated English left: 'zorbic flemation kneecap pain'",
    ]
    retry_prompts = [
        e.body["messages"][1]["content"] for e in fake_server.log if "<failures>" in e.body["messages"][1]["content"]
    ]
    assert len(retry_prompts) == 1
    assert "- question: untranslated English left: 'zorbic flemation kneecap pain'" in retry_prompts[0]
    assert "Ibuprofen 400 mg" in json.dumps(repaired["translation"], ensure_ascii=False)


def test_items_that_keep_failing_go_to_the_review_queue(endpoint_for, settings, tmp_path):
    with FakeServer(fix_on_retry=False) as server:
        manifest, out = translate(server, endpoint_for, settings, tmp_path)
    assert manifest["items"] == {"machine": 2, "pending": 1}
    assert not any(row["id"] == "t-003-ar" for row in rows(out / "translated.jsonl"))
    queue = rows(out / "review" / "queue.jsonl")
    assert [(r["id"], r["segment"]) for r in queue] == [
        ("t-003", "question"),
        ("t-003", "option:A"),
        ("t-003", "option:B"),
    ]
    assert "untranslated English left" in queue[0]["reason"]
    assert (out / "review" / "queue.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM, for spreadsheets
    ledger = {row["id"]: row for row in rows(out / "ledger.jsonl")}
    assert ledger["t-003"]["rounds"] == settings.translate.max_rounds + 1


def test_keep_unverified_writes_failed_items_marked_with_their_reasons(endpoint_for, settings, tmp_path):
    with FakeServer(fix_on_retry=False) as server:
        manifest, out = translate(server, endpoint_for, settings, tmp_path, keep_unverified=True)
    assert manifest["items"] == {"machine": 2, "unverified": 1}
    assert {r["id"] for r in rows(out / "translated.jsonl")} == {"t-001-ar", "t-002-ar"}  # a mix takes it or not
    (unverified,) = rows(out / "unverified.jsonl")
    assert unverified["provenance"]["status"] == "unverified"
    assert (
        unverified["provenance"]["qa_reasons"][-1]
        == "question: untranslated English left: 'zorbic flemation kneecap pain'"
    )


@pytest.mark.parametrize(
    ("source", "fmt", "parse"), [("chats.jsonl", "chat_jsonl", parse_chat), ("qa.jsonl", "qa_jsonl", parse_qa)]
)
def test_chats_and_open_qa_are_translated_turn_by_turn(
    fake_server, endpoint_for, settings, tmp_path, source, fmt, parse
):
    manifest, out = translate(fake_server, endpoint_for, settings, tmp_path, source=source, fmt=fmt)
    translated = rows(out / "translated.jsonl")
    assert manifest["input_rejects"] == 0 and len(translated) == manifest["outputs"]["translated.jsonl"]["rows"] >= 1
    for row in translated:
        assert parse(row).language == "ar"
    if fmt == "chat_jsonl":
        plan = translated[0]["messages"][1]["content"]
        assert [m["role"] for m in translated[0]["messages"]] == ["user", "assistant"]
        assert plan.startswith("## ") and plan.count("\n- ") == 2 and "paracetamol 500 mg" in plan


def test_a_second_run_pays_for_nothing(fake_server, endpoint_for, settings, tmp_path):
    first, out = translate(fake_server, endpoint_for, settings, tmp_path)
    before = (out / "translated.jsonl").read_bytes()
    second, _ = translate(fake_server, endpoint_for, settings, tmp_path)
    assert (
        second["usage"]["completions_paid"] == 0 and second["usage"]["cache_hits"] == first["usage"]["completions_paid"]
    )
    assert (out / "translated.jsonl").read_bytes() == before


def test_a_model_that_drops_the_block_tags_gets_one_call_per_segment(endpoint_for, settings, tmp_path):
    with FakeServer(untagged=True) as server:
        manifest, out = translate(server, endpoint_for, settings, tmp_path)
    assert manifest["items"] == {"machine": 2, "pending": 1}  # t-003's untranslatable words need a named failure
    ledger = {row["id"]: row for row in rows(out / "ledger.jsonl")}
    history = ledger["t-001"]["history"]
    assert history[0]["reasons"][0].startswith("the reply has no <seg> blocks; expected 6")
    assert history[-1] == {"round": "per-segment", "reasons": [], "chrf": ledger["t-001"]["scores"]["chrf"]}
    assert ledger["t-001"]["rounds"] == settings.translate.max_rounds + 2


def test_gibberish_is_kept_only_as_unverified_with_every_field_filled(endpoint_for, settings, tmp_path):
    with FakeServer(nonsense=True) as server:
        manifest, out = translate(server, endpoint_for, settings, tmp_path, keep_unverified=True)
    assert manifest["items"] == {"unverified": 3}
    assert rows(out / "translated.jsonl") == []
    for row in rows(out / "unverified.jsonl"):
        item = parse_mcq(row)  # every option has text: the data stage can read it
        assert row["provenance"]["status"] == "unverified" and row["provenance"]["qa_reasons"]
        assert all(option.strip() for option in item.options)
    with FakeServer(nonsense=True) as server:
        translate(server, endpoint_for, settings, tmp_path)
    assert not (out / "unverified.jsonl").exists()  # a run without the option removes the earlier file


def test_progress_shows_rate_and_eta(fake_server, endpoint_for, settings, tmp_path, capsys):
    run = TranslateRun(FIXTURES / "mcq_small.jsonl", "mcq_json", tmp_path / "run", tmp_path / "c.sqlite", progress=True)
    asyncio.run(run_translation(run, settings, endpoint_for(fake_server)))
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert bar.startswith("translate: 100%") and "9/9" in bar and "item/s" in bar and "<00:00" in bar
    assert "calls paid" in bar and "tokens" in bar
