"""Human refinement: export the queue, import reviewed CSV/JSON lines; edits win; re-importing changes nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest

from data_prep.llm.review import REVIEW_COLUMNS, ReviewError, export_queue, import_reviews
from data_prep.llm.testing.fake_server import FakeServer
from data_prep.llm.translate import TranslateRun, run_translation

# Not `from conftest import`: with several tests/*/conftest.py the name `conftest` is ambiguous.
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# A reviewer's Arabic: diacritics, tatweel, an RTL mark and Arabic-Indic digits, kept byte for byte.
EDIT = "\u200fرجلٌ عمره ٤٠ عامًا يعانـــي من ألمٍ شديد في الرضفة منذ الصباح. ما أفضل علاج؟"


def translate(tmp_path, endpoint_for, settings, fix_on_retry=False):
    with FakeServer(fix_on_retry=fix_on_retry) as server:
        run = TranslateRun(
            FIXTURES / "mcq_small.jsonl", "mcq_json", tmp_path / "run", tmp_path / "c.sqlite", progress=False
        )
        asyncio.run(run_translation(run, settings, endpoint_for(server)))
    return run.out


def reviewed_csv(out, path, decisions):
    """Fill the exported queue.csv as a reviewer would (pandas, as a spreadsheet round trip)."""
    frame = pd.read_csv(out / "review" / "queue.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    for (item, segment), (verdict, edit) in decisions.items():
        row = (frame["id"] == item) & (frame["segment"] == segment)
        frame.loc[row, "verdict"] = verdict
        frame.loc[row, "edited_translation"] = edit
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def output(out):
    return {r["id"]: r for r in map(json.loads, (out / "translated.jsonl").read_text(encoding="utf-8").splitlines())}


def snapshot(out):
    names = ["translated.jsonl", "reviews.jsonl", "manifest.json", "review/queue.csv", "review/queue.jsonl"]
    return {n: ((out / n).read_bytes(), (out / n).stat().st_mtime_ns) for n in names if (out / n).exists()}


DECISIONS = {
    ("t-003", "question"): ("", EDIT),
    ("t-003", "option:A"): ("accept", ""),
    ("t-003", "option:B"): ("ACCEPT ", ""),  # case and spaces forgiven
}


def test_a_reviewed_csv_edits_and_accepts_and_reimporting_changes_nothing(tmp_path, endpoint_for, settings):
    out = translate(tmp_path, endpoint_for, settings)
    assert "t-003-ar" not in output(out)
    report = import_reviews(out, [reviewed_csv(out, tmp_path / "done.csv", DECISIONS)])
    assert (report.changed, report.unchanged, report.warnings) == (3, 0, [])
    row = output(out)["t-003-ar"]
    assert row["question"] == EDIT  # byte for byte: marks, tatweel, digits
    assert row["provenance"]["status"] == "edited"
    assert row["provenance"]["edited_segments"] == ["question"]
    assert row["provenance"]["reviewed_segments"] == ["option:A", "option:B"]
    assert "Ibuprofen 400 mg" in row["options"]
    assert json.loads((out / "manifest.json").read_text())["items"] == {"edited": 1, "machine": 2}
    assert (out / "review" / "queue.csv").read_text(encoding="utf-8-sig").count("\n") == 1  # header only: queue empty

    before = snapshot(out)
    again = import_reviews(out, [tmp_path / "done.csv"])
    assert (again.changed, again.unchanged) == (0, 3)
    assert snapshot(out) == before  # same bytes, same modification times


def test_jsonl_reviews_and_the_edit_wins_over_a_later_machine_run(tmp_path, endpoint_for, settings):
    out = translate(tmp_path, endpoint_for, settings)
    queue = [json.loads(line) for line in (out / "review" / "queue.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in queue:
        row["verdict"], row["edited_translation"] = DECISIONS[(row["id"], row["segment"])]
    path = tmp_path / "done.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in queue), encoding="utf-8")
    import_reviews(out, [path])
    # a later run whose machine translation of t-003 now passes QA on its own
    translate(tmp_path, endpoint_for, settings, fix_on_retry=True)
    row = output(out)["t-003-ar"]
    assert row["question"] == EDIT and row["provenance"]["status"] == "edited"


def test_a_reject_drops_the_item_and_spot_checks_cover_passed_items(tmp_path, endpoint_for, settings):
    out = translate(tmp_path, endpoint_for, settings)
    csv_path, _, count = export_queue(out, include_all=True, prefix="all")
    assert count == 14  # t-001: question, 4 options, explanation; t-002: question, 4 options; t-003: 3
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.loc[(frame["id"] == "t-001") & (frame["segment"] == "option:C"), "verdict"] = "reject"
    frame.loc[frame["id"] == "t-002", "verdict"] = "accept"
    frame.to_csv(tmp_path / "spot.csv", index=False)
    import_reviews(out, [tmp_path / "spot.csv"])
    rows = output(out)
    assert "t-001-ar" not in rows
    assert rows["t-002-ar"]["provenance"]["status"] == "reviewed"


def test_a_bad_file_lists_every_problem_and_writes_nothing(tmp_path, endpoint_for, settings):
    out = translate(tmp_path, endpoint_for, settings)
    path = reviewed_csv(out, tmp_path / "bad.csv", DECISIONS)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "verdict"] = "maybe"
    frame.loc[1, "verdict"], frame.loc[1, "edited_translation"] = "reject", "نص"
    frame.loc[2, "source_sha"] = "0" * 16
    extra = frame.iloc[[0]].assign(id="nope")
    duplicate = frame.iloc[[1]]
    pd.concat([frame, extra, duplicate]).to_csv(path, index=False)
    before = snapshot(out)
    with pytest.raises(ReviewError) as info:
        import_reviews(out, [path])
    assert str(info.value).splitlines() == [
        f"{path}:row 2: verdict 'maybe' is not accept, reject or empty",
        f"{path}:row 3: an edit with verdict reject; keep one of them",
        f"{path}:row 4: the source of t-003 option:B changed since the export; export again",
        f"{path}:row 5: unknown id 'nope' (not in this run's ledger)",
        f"{path}:row 6: t-003 option:A was already given at {path}:row 3",
    ]
    assert snapshot(out) == before and not (out / "reviews.jsonl").exists()


def test_an_accept_of_a_machine_text_that_changed_is_refused(tmp_path, endpoint_for, settings):
    out = translate(tmp_path, endpoint_for, settings)
    path = reviewed_csv(out, tmp_path / "old.csv", {("t-003", "option:A"): ("accept", "")})
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[frame["segment"] == "option:A", "machine_sha"] = "f" * 16
    frame.to_csv(path, index=False)
    with pytest.raises(ReviewError, match=r"row 3: the machine translation of t-003 option:A changed since the export"):
        import_reviews(out, [path])


def test_an_edit_with_other_numbers_is_kept_with_a_warning(tmp_path, endpoint_for, settings):
    out = translate(tmp_path, endpoint_for, settings)
    edit = "رجل عمره ٤١ عامًا يعاني من ألم في الرضفة"
    report = import_reviews(out, [reviewed_csv(out, tmp_path / "n.csv", {("t-003", "question"): ("", edit)})])
    assert report.warnings == [f"{tmp_path / 'n.csv'}:row 2: question: the edit's numbers differ from the source's"]


def test_every_queued_item_is_routed_with_the_failing_check_named(tmp_path, endpoint_for, settings):
    from data_prep.llm.checks import CHECKS

    out = translate(tmp_path, endpoint_for, settings)
    frame = pd.read_csv(out / "review" / "queue.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == REVIEW_COLUMNS
    assert set(frame["id"]) == {"t-003"}  # the item whose words the fake translator does not know
    named = {name for cell in frame["checks"] if cell for name in cell.split(", ")}
    assert named and named <= set(CHECKS)
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text(encoding="utf-8").splitlines()]
    row = next(r for r in ledger if r["id"] == "t-003")
    assert row["reasons"] == [f["message"] for f in row["failures"]]
    for failure in row["failures"]:  # each failure reaches the segment it names, under its check's name
        shown = frame[frame["segment"] == failure["segment"]] if failure["segment"] else frame
        assert all(failure["check"] in cell.split(", ") for cell in shown["checks"])
        assert all(failure["message"] in cell for cell in shown["reason"])
