"""The data loaders: every format, every source kind, the hub layouts, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_fixtures import EDGE_COUNTS, RLM, write_index, write_jsonl

from eval_tasks import data, registry


def load(task: str, folder: Path):
    return data.load_records(task, data.resolve_source(str(folder)))


def test_the_embedded_sample_covers_every_task_in_six_formats():
    entries = data.read_index(registry.SAMPLE_INDEX)
    assert sorted(e.task for e in entries) == sorted(registry.all_tasks())
    assert len(entries) == 19 and {e.format for e in entries} == set(data.LOCAL_FORMATS)
    for task in registry.all_tasks():
        items, report = data.load_records(task, data.resolve_source("sample"))
        assert (len(items), report.rows_scored, len(report.rejects)) == (6, 6, 0), task
        assert not data.gate_problems(report) and report.audit_counts() == {}, task


@pytest.mark.parametrize("task", sorted(EDGE_COUNTS))
def test_edge_cases_golden_counts(edge_data, task):
    items, report = load(task, edge_data)
    in_file, scored, rejected = EDGE_COUNTS[task]
    assert (report.sources[0].rows_in_source, report.rows_scored, len(report.rejects)) == (in_file, scored, rejected)
    assert len(items) == scored
    assert data.REPORTS[task] is report


def test_edge_case_answers(edge_data):
    medqa, report = load("bimedix_en_medqa", edge_data)
    assert [r.answer for r in medqa] == [0]
    assert [(r.code, r.reason) for r in report.rejects] == [
        ("option_count", "5 options, but task bimedix_en_medqa scores 4-option questions"),
        ("answer_not_in_options", "answer_idx 'F' is not one of the options A B C D"),
    ]
    medmcqa, report = load("bimedix_ar_medmcqa", edge_data)
    # cop 1, Arabic-Indic "٢", and "٣" wrapped in a direction mark and a space: 1-based, declared
    assert [r.answer for r in medmcqa] == [0, 1, 2]
    assert medmcqa[2].question.startswith(RLM), "benchmark text is kept as it is"
    assert report.rejects[0].reason == "cop 5 is not in 1..4 (1-based)"
    assert report.sources[0].params["cop_evidence"].startswith("cop_base 1 (cop_base in ")
    anatomy, report = load("bimedix_ar_mmlu_anatomy", edge_data)
    assert [r.answer for r in anatomy] == [1, 2]  # "ب" with tatweel and RLM; "C"
    assert anatomy[1].question == "كم زوجًا من الأضلاع لدى البالغ؟\nاختر واحدًا."
    assert report.rejects[0].where.endswith("anatomy_ar.csv:4"), "line numbers count the quoted newline"
    biology, report = load("bimedix_ar_mmlu_college_biology", edge_data)
    assert [r.answer for r in biology] == [1, 1]
    assert biology[1].options[1] == "خفض طاقة\nالتنشيط", "an unmarked line continues the option above"
    assert report.rejects[0].reason == "option B is empty"
    pubmedqa, report = load("bimedix_ar_pubmedqa", edge_data)
    assert [(r.id, r.answer) for r in pubmedqa] == [("91000001", 0), ("91000002", 2)]
    assert (
        pubmedqa[0].options == ("نعم", "لا", "ربما") and pubmedqa[0].context == "خلفية.\nنتائج: 9 أيام مقابل 13 يومًا."
    )
    assert "final_decision" in report.rejects[0].reason


def test_an_undecidable_medmcqa_file_is_one_line_naming_the_evidence(tmp_path):
    rows = [
        {"question": f"سؤال {i}؟", "opa": "أ", "opb": "ب", "opc": "ج", "opd": "د", "cop": c}
        for i, c in enumerate((1, 2, 3))
    ]
    write_jsonl(tmp_path / "m.jsonl", rows)
    write_index(tmp_path, [{"task": "bimedix_ar_medmcqa", "language": "ar", "path": "m.jsonl", "format": "medmcqa"}])
    with pytest.raises(data.EvalDataError) as err:
        load("bimedix_ar_medmcqa", tmp_path)
    assert "m.jsonl: cannot tell whether MedMCQA cop counts from 0" in str(err.value)
    assert "cop 1: 1, cop 2: 1, cop 3: 1 and no cop 0 or 4; set cop_base: 0 or 1 on its entry in" in str(err.value)
    assert "mix" not in str(err.value)


def test_selections_rows_where_and_ids(tmp_path):
    rows = [
        {
            "question": f"q{i}",
            "options": "(A) a\n(B) b\n(C) c\n(D) d",
            "answer": "(A)",
            "source": "medmcqa" if i % 2 else "medqa-usmle",
        }
        for i in range(6)
    ]
    (tmp_path / "mixed.json").write_text(json.dumps(rows), encoding="utf-8")
    pmids = {str(90 + i): {"QUESTION": f"q{i}", "CONTEXTS": ["c"], "final_decision": "no"} for i in range(4)}
    (tmp_path / "pqal.json").write_text(json.dumps(pmids), encoding="utf-8")
    (tmp_path / "truth.json").write_text(json.dumps({"91": "no", "93": "no"}), encoding="utf-8")
    write_index(
        tmp_path,
        [
            {
                "task": "bimedix_en_medmcqa",
                "language": "en",
                "path": "mixed.json",
                "format": "mcq_json",
                "where": {"source": "medmcqa"},
            },
            {
                "task": "bimedix_en_medqa",
                "language": "en",
                "path": "mixed.json",
                "format": "mcq_json",
                "rows": [0, 4],
                "where": {"source": "medqa-usmle"},
            },
            {
                "task": "bimedix_en_pubmedqa",
                "language": "en",
                "path": "pqal.json",
                "format": "pubmedqa",
                "ids": "truth.json",
            },
        ],
    )
    assert [r.question for r in load("bimedix_en_medmcqa", tmp_path)[0]] == ["q1", "q3", "q5"]
    assert [r.question for r in load("bimedix_en_medqa", tmp_path)[0]] == ["q0", "q2"]
    items, report = load("bimedix_en_pubmedqa", tmp_path)
    assert [r.id for r in items] == ["91", "93"] and report.sources[0].rows_selected == 2


def test_pubmedqa_in_normalised_mcq_form_maps_to_the_labels(tmp_path):
    rows = [
        {
            "question": "Does it work?",
            "context": "Abstract text.",
            "options": "(A) Yes.\n(B) No.\n(C) Maybe.",
            "answer": "(C)",
            "source": "pubmedqa",
        }
    ]
    (tmp_path / "p.json").write_text(json.dumps(rows), encoding="utf-8")
    write_index(tmp_path, [{"task": "bimedix_en_pubmedqa", "language": "en", "path": "p.json", "format": "mcq_json"}])
    [item], _ = load("bimedix_en_pubmedqa", tmp_path)
    assert (item.options, item.answer, item.context) == (("yes", "no", "maybe"), 2, "Abstract text.")


# -- hub column layouts (datasets.load_dataset replaced by rows in memory: tests never touch the hub) --

Q, (A, B, C, D) = "ما العضو الذي يفرز الإنسولين؟", ("الكبد", "الطحال", "البنكرياس", "الكلية")
HUB_ROWS = {
    "normalised MCQ": {"question": Q, "options": f"(A) {A}\n(B) {B}\n(C) {C}\n(D) {D}", "answer": "(C)"},
    "MedQA": {"question": Q, "options": {"A": A, "B": B, "C": C, "D": D}, "answer_idx": "C", "answer": C},
    "MedQA, answer text only": {"question": Q, "options": [A, B, C, D], "answer": C},
    "MedQA hf": {"sent1": Q, "ending0": A, "ending1": B, "ending2": C, "ending3": D, "label": 2},
    "MedMCQA": {"id": "x", "question": Q, "opa": A, "opb": B, "opc": C, "opd": D, "cop": 2},
    "MMLU columns": {"Question": Q, "A": A, "B": B, "C": C, "D": D, "Answer": "C"},
    "MMLU hf": {"question": Q, "choices": [A, B, C, D], "answer": 2},
}


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    served = {}

    def load_dataset(path, name=None, split=None, **_):
        return datasets.Dataset.from_list(served[path])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return served


@pytest.mark.parametrize("layout", sorted(HUB_ROWS))
def test_hub_layouts_are_detected(fake_hub, layout):
    fake_hub["BiMediX/medmcqa-arabic"] = [HUB_ROWS[layout]]
    [item], report = data.load_records("bimedix_ar_medmcqa", data.resolve_source("hub"))
    assert (item.options, item.answer) == ((A, B, C, D), 2), "hub MedMCQA cop is 0-based"
    assert report.sources[0].source == "BiMediX/medmcqa-arabic"


def test_a_hub_split_that_contradicts_its_declared_cop_base_is_refused(fake_hub):
    fake_hub["BiMediX/medmcqa-arabic"] = [{**HUB_ROWS["MedMCQA"], "cop": c} for c in (1, 4, 2)]
    with pytest.raises(
        data.EvalDataError, match=r"cop_base 0 \(cop_base in eval_tasks/hub_sources\.yaml\) contradicts"
    ):
        data.load_records("bimedix_ar_medmcqa", data.resolve_source("hub"))


def test_hub_pubmedqa_layouts(fake_hub):
    fake_hub["BiMediX/pubmedqa-test_arabic"] = [
        {
            "pubid": 1,
            "question": "هل يفيد العلاج؟",
            "context": {"contexts": ["c1", "c2"], "labels": ["A", "B"]},
            "long_answer": "",
            "final_decision": "نعم",
        },
        {
            "pubid": 2,
            "question": "هل يقلل الوفيات؟",
            "context": {"contexts": ["c"], "labels": ["A"]},
            "long_answer": "",
            "final_decision": "maybe",
        },
    ]
    items, _ = data.load_records("bimedix_ar_pubmedqa", data.resolve_source("hub"))
    assert [(r.id, r.context, r.answer) for r in items] == [("1", "c1\nc2", 0), ("2", "c", 2)]


def test_hub_unknown_layout_names_the_columns(fake_hub):
    fake_hub["BiMediX/medqa-test_arabic"] = [{"text": "Q", "label_id": 1}]
    with pytest.raises(
        data.EvalDataError,
        match=r"BiMediX/medqa-test_arabic: unrecognised column layout; columns found: label_id, text;",
    ):
        data.load_records("bimedix_ar_medqa", data.resolve_source("hub"))


def test_pubmedqa_test_split_reproduces_the_authors_procedure(fake_hub):
    """500 of 1000, half of each label, deterministic; and a wrong row order is caught by the sha256."""
    rows = [
        (
            i + 1,
            {
                "pubid": i,
                "question": f"Q{i}?",
                "context": {"contexts": ["c"]},
                "final_decision": ("yes", "no", "maybe")[i % 3],
            },
        )
        for i in range(1000)
    ]
    test = data.pubmedqa_test_split(rows)
    assert len(test) == 500 and test == data.pubmedqa_test_split(rows)  # 167 + 166 + 166, then one moved over
    assert len({r["pubid"] for _, r in test}) == 500
    fake_hub["qiaojin/PubMedQA"] = [
        {"pubid": i, "question": "Q", "context": {"contexts": ["c"]}, "long_answer": "", "final_decision": "yes"}
        for i in range(10)
    ]
    with pytest.raises(data.EvalDataError, match="did not give the expected rows"):
        data.load_records("bimedix_en_pubmedqa", data.resolve_source("hub"))


# -- bad input: one-line errors naming the file and line; unusable rows named by file:line --


@pytest.mark.parametrize(
    ("files", "entry", "message"),
    [
        ({}, {"path": "missing.jsonl", "format": "medqa"}, r"missing\.jsonl: no such file"),
        (
            {"m.jsonl": '{"question": "Q"}\n'},
            {"path": "m.jsonl", "format": "medqa"},
            r"no scorable rows .*: 1 rejected \(first: \S*m\.jsonl:1: missing field 'options'",
        ),
        (
            {"m.jsonl": '\n{"question": "Q", "options": {"A": "a"}, "answer_idx": "A"}\n{not json\n'},
            {"path": "m.jsonl", "format": "medqa"},
            r"2 rejected \(first: \S*m\.jsonl:2: 1 options; 2 to 5 are supported",
        ),
        (
            {"m.json": "[1]"},
            {"path": "m.json", "format": "pubmedqa"},
            r"m\.json:1: expected one JSON object keyed by id",
        ),
        (
            {"m.jsonl": b"\xff\xfe\x00"},
            {"path": "m.jsonl", "format": "medqa"},
            r"first: \S*m\.jsonl:1: not valid UTF-8 \(byte 1 of the line is 0xff\)",
        ),
    ],
)
def test_malformed_files_give_one_line_errors(tmp_path, files, entry, message):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    write_index(tmp_path, [{"task": "bimedix_en_medqa", "language": "en", **entry}])
    with pytest.raises(data.EvalDataError, match=message) as err:
        load("bimedix_en_medqa", tmp_path)
    assert "\n" not in str(err.value)


def test_unusable_rows_are_named_by_file_and_line(tmp_path):
    (tmp_path / "m.csv").write_text("q one?,a,b,c,d,A\nq two?,a,b,c,A\n", encoding="utf-8")
    write_index(tmp_path, [{"task": "bimedix_en_medqa", "language": "en", "path": "m.csv", "format": "mmlu_csv"}])
    items, report = load("bimedix_en_medqa", tmp_path)
    assert len(items) == 1
    assert [(r.where, r.reason) for r in report.rejects] == [
        (f"{tmp_path / 'm.csv'}:2", "expected 6 columns (question,A,B,C,D,answer), got 5")
    ]
    assert data.gate_problems(report) == [
        f"{tmp_path / 'm.csv'}: 1 of 2 rows rejected (50.0%, above the limit 10%): column_count 1"
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": "bimedix_en_medqq"}, r"entry 1: unknown task 'bimedix_en_medqq'"),
        ({"language": "ar"}, r"entry 1: language 'ar' does not match task bimedix_en_medqa \(en\)"),
        (
            {"format": "parquet"},
            r"entry 1: unknown format 'parquet' \(known: medqa, medmcqa, pubmedqa, mmlu_csv, mcq_json, medarabiq_csv\)",
        ),
        ({"rowz": [0, 1]}, r"entry 1: unknown key rowz"),
        ({"task": "bimedix_en_medqa_gen"}, r"name the log-likelihood task 'bimedix_en_medqa'"),
    ],
)
def test_bad_index_entries(tmp_path, entry, message):
    write_index(
        tmp_path, [{"task": "bimedix_en_medqa", "language": "en", "path": "x.jsonl", "format": "medqa", **entry}]
    )
    with pytest.raises(data.EvalDataError, match=message):
        data.read_index(tmp_path / "index.yaml")


def test_missing_sources(tmp_path):
    with pytest.raises(data.EvalDataError, match=r"EVAL_DATA: .*nowhere: no such folder or index file"):
        data.resolve_source(str(tmp_path / "nowhere"))
    with pytest.raises(data.EvalDataError, match=r"has no index\.yaml"):
        data.resolve_source(str(tmp_path))
    write_jsonl(tmp_path / "q.jsonl", [])
    write_index(tmp_path, [{"task": "bimedix_en_medqa", "language": "en", "path": "q.jsonl", "format": "medqa"}])
    with pytest.raises(data.EvalDataError, match=r"no entry for task bimedix_ar_medqa"):
        load("bimedix_ar_medqa", tmp_path)
    with pytest.raises(data.EvalDataError, match=r"bimedix_en_medqa: no scorable rows"):
        load("bimedix_en_medqa", tmp_path)


def test_a_pubmedqa_file_cannot_feed_a_multiple_choice_task(tmp_path):
    (tmp_path / "p.json").write_text(
        json.dumps({"1": {"QUESTION": "Does it work?", "CONTEXTS": ["c"], "final_decision": "yes"}}), encoding="utf-8"
    )
    write_index(tmp_path, [{"task": "bimedix_en_medqa", "language": "en", "path": "p.json", "format": "pubmedqa"}])
    with pytest.raises(
        data.EvalDataError, match=r"first: \S*p\.json:1: a yes / no / maybe question cannot feed task bimedix_en_medqa"
    ):
        load("bimedix_en_medqa", tmp_path)
