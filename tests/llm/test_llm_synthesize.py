"""Chat synthesis: parsing, validation (roles, turns, leaks, the answer), regeneration, rejection with reasons."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from data_prep.llm.records import MCQ, parse_chat
from data_prep.llm.synthesize import ChatValidator, SynthesizeRun, coverage, parse_turns, run_synthesis
from data_prep.llm.testing.fake_server import FakeServer

# Not `from conftest import`: with several tests/*/conftest.py the name `conftest` is ambiguous.
FIXTURES = Path(__file__).resolve().parent / "fixtures"

ITEM = MCQ(
    "m-1",
    "A 60-year-old man has crushing chest pain. What is the best first drug?",
    ["Aspirin", "Aspirin and clopidogrel", "Insulin", "Furosemide"],
    0,
)


def chat(*turns):
    return "\n".join(f"{role}: {text}" for role, text in turns)


GOOD = chat(
    ("Patient", "I have a crushing pain in my chest since this morning."),
    ("Doctor", "How long exactly, and does it spread to your arm?"),
    ("Patient", "About an hour, and yes, to my left arm."),
    ("Doctor", "Do you smoke or have diabetes?"),
    ("Patient", "I smoke."),
    ("Doctor", "This may be a heart attack. Chew an aspirin now and call an ambulance."),
)


@pytest.fixture
def validator(settings):
    return ChatValidator(settings.synthesize)


def test_turns_parse_with_bold_labels_a_preamble_and_continuation_lines():
    reply = "Here is the conversation:\n**Patient:** I feel sick.\nSince yesterday.\n**Doctor**: Any fever?"
    assert parse_turns(reply) == [("patient", "I feel sick.\nSince yesterday."), ("doctor", "Any fever?")]


def test_a_good_chat_passes(validator):
    verdict = validator.validate(GOOD, ITEM)
    assert verdict.ok and verdict.answer_coverage == 1.0


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (chat(("Doctor", "Hello."), *parse_turns(GOOD)), "the first turn is the doctor's"),
        (GOOD + "\nPatient: Thanks.", "the last turn is the patient's"),
        (GOOD.replace("Patient: I smoke.", "Doctor: I see."), "turns 4 and 5 are both the doctor's"),
        (chat(*parse_turns(GOOD)[:1], *parse_turns(GOOD)[-1:]), "2 turns, at least 6 needed"),
        (
            GOOD.replace("Do you smoke", "Which of the following: do you smoke"),
            "turn 4 (doctor) gives the exam away: 'Which of the following'",
        ),
        (
            GOOD.replace("Chew an aspirin now", "The answer is A, chew an aspirin"),
            "turn 6 (doctor) gives the exam away: 'answer is A'",
        ),
        (GOOD.replace("Chew an aspirin now", "Option (A): aspirin"), "turn 6 (doctor) gives the exam away: 'Option'"),
        (
            GOOD.replace("Chew an aspirin now", "Take insulin now"),
            "the last doctor turn does not state the correct answer 'Aspirin' (0 of 1 key words)",
        ),
        (
            GOOD.replace("Chew an aspirin now", "Take aspirin and clopidogrel now"),
            "the last doctor turn points to another answer, 'Aspirin and clopidogrel'",
        ),
    ],
)
def test_each_invalid_chat_is_named(validator, reply, reason):
    verdict = validator.validate(reply, ITEM)
    assert any(r.startswith(reason) for r in verdict.reasons()), verdict.reasons()


def test_a_lower_case_a_is_not_an_option_letter(validator):
    reply = GOOD.replace("Chew an aspirin now", "The answer is a simple one: chew an aspirin now")
    assert validator.validate(reply, ITEM).ok


def test_coverage_matches_word_stems_and_numbers():
    assert coverage("Metformin 500 mg twice a day", "Start metformin, 500 mg, twice each day.") == (4, 4)
    assert coverage("Diabetic ketoacidosis", "This is diabetes with ketoacidosis.") == (2, 2)  # 'diabe' stem
    assert coverage("Lifestyle changes", "Rest well.") == (0, 2)


def test_unsuitable_items_are_rejected_before_any_call(validator):
    assert "cannot become a conversation" in validator.unsuitable(MCQ("x", "All are true EXCEPT:", ["a", "b"], 0))
    assert "cannot be reached" in validator.unsuitable(MCQ("x", "Q?", ["Fever", "All of the above"], 1))
    assert validator.unsuitable(ITEM) is None


def synthesize(server, endpoint_for, settings, tmp_path, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "in.jsonl"
    source.write_text((FIXTURES / "mcq_small.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    run = SynthesizeRun(source, "mcq_json", tmp_path / "syn", tmp_path / "c.sqlite", progress=False, **options)
    manifest = asyncio.run(run_synthesis(run, settings, endpoint_for(server)))
    chats = [json.loads(x) for x in (run.out / "chats.jsonl").read_text(encoding="utf-8").splitlines()]
    unverified = run.out / "chats_unverified.jsonl"
    if unverified.exists():
        chats += [json.loads(x) for x in unverified.read_text(encoding="utf-8").splitlines()]
    rejects = [json.loads(x) for x in (run.out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    return manifest, chats, rejects


def test_invalid_chats_are_regenerated_with_a_new_seed_and_temperature(endpoint_for, settings, tmp_path):
    with FakeServer(bad_chats=2) as server:
        manifest, chats, _ = synthesize(server, endpoint_for, settings, tmp_path)
        requests = [e.body for e in server.log]
    assert manifest["items"]["machine"] == 3 and manifest["attempts"] == {"3": 3}
    first = chats[0]
    assert first["id"] == "t-001-chat" and first["provenance"]["attempts"] == 3
    assert (first["provenance"]["seed"], first["provenance"]["temperature"]) == (2, 1.0)
    assert parse_chat(first).messages[0]["role"] == "user" and len(first["messages"]) >= settings.synthesize.min_turns
    assert "Myocardial infarction" in first["messages"][-1]["content"]
    per_item = [(r["seed"], r["temperature"]) for r in requests if "45-year-old" in json.dumps(r)]
    assert per_item == [(0, 0.7), (1, 0.85), (2, 1.0)]  # three distinct requests: three cache keys


def test_chats_still_invalid_after_every_attempt_are_rejected_with_reasons(endpoint_for, settings, tmp_path):
    with FakeServer(bad_chats=3) as server:
        manifest, chats, rejects = synthesize(server, endpoint_for, settings, tmp_path)
    assert manifest["items"]["machine"] == 0 and chats == []
    assert manifest["items"]["rejected"] == 4  # three invalid three times, one unsuitable (a yes/no answer)
    reject = next(r for r in rejects if r["id"] == "t-001")
    assert reject["reason"] == "invalid after 3 attempts; last: 2 turns, at least 6 needed"
    assert reject["attempts"] == [
        ["turn 6 (doctor) gives the exam away: 'option'"],
        ["turns 3 and 4 are both the patient's; roles must alternate"],
        ["2 turns, at least 6 needed"],
    ]


def test_keep_unverified_writes_usable_chats_with_their_reasons(endpoint_for, settings, tmp_path):
    with FakeServer(bad_chats=3) as server:
        manifest, chats, _ = synthesize(server, endpoint_for, settings, tmp_path, keep_unverified=True)
    assert manifest["items"]["unverified"] == 3
    assert (
        manifest["outputs"]["chats.jsonl"]["rows"] == 0 and manifest["outputs"]["chats_unverified.jsonl"]["rows"] == 3
    )
    assert all(c["provenance"]["status"] == "unverified" and c["provenance"]["reasons"] for c in chats)


def test_items_that_cannot_be_chats_are_rejected_and_counted(fake_server, endpoint_for, settings, tmp_path):
    manifest, _, rejects = synthesize(fake_server, endpoint_for, settings, tmp_path)
    assert manifest["items"]["input_rejects"] == 5 and manifest["items"]["rejected"] == 1
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert reasons["t-004"].startswith("the item is in 'ar'; synthesis takes English MCQ items")
    assert reasons["t-006"].startswith("the correct answer 'Yes' cannot be reached in a conversation")


def test_unverified_replies_are_given_the_chat_shape_and_say_how():
    from data_prep.llm.synthesize import shape_unverified

    turns = [
        ("doctor", "Hello."),
        ("patient", "I cough."),
        ("patient", "And fever."),
        ("doctor", "Rest."),
        ("patient", "Ok"),
    ]
    shaped, note = shape_unverified(turns, "Q?", "raw")
    assert shaped == [("patient", "Q?"), ("doctor", "Hello."), ("patient", "I cough.\nAnd fever."), ("doctor", "Rest.")]
    assert note == (
        "consecutive turns of one role were joined; the question was added as the patient's first turn; "
        "a trailing patient turn was dropped"
    )
    assert shape_unverified([], "Q?", "gibberish") == (
        [("patient", "Q?"), ("doctor", "gibberish")],
        "the reply had no usable turns: kept as the doctor's answer to the question",
    )
    assert shape_unverified([], "Q?", "  ") == ([], "")


def test_gibberish_chats_are_rejected_or_kept_unverified_with_their_shape_explained(endpoint_for, settings, tmp_path):
    with FakeServer(nonsense=True) as server:
        manifest, chats, rejects = synthesize(server, endpoint_for, settings, tmp_path / "a")
        assert manifest["items"]["machine"] == 0 and chats == []
        reject = next(r for r in rejects if r["id"] == "t-001")
        assert reject["reason"] == "invalid after 3 attempts; last: no turns: expected lines starting 'Patient:' or 'Doctor:'"  # fmt: skip
        manifest, chats, _ = synthesize(server, endpoint_for, settings, tmp_path / "b", keep_unverified=True)
    assert manifest["items"]["unverified"] == 3
    for chat in chats:
        assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
        assert chat["provenance"]["shaped"].startswith("the reply had no usable turns")
