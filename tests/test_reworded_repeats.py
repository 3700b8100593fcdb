"""Reworded repeats and off-topic clusters (issue 25): the audit at the ground floor finds questions
that reword one another, uses each once, counts them against --max-repeated, and reports a cluster of
many copies in one file as off-topic filler, in convert, check-data and before every eval run.

The fixture is our own: an Arabic MMLU-layout file of distinct medical questions (some sharing a
frame, some differing only in a number), and one off-topic question (resetting a router's password)
reworded twelve times, as a scraped or templated file repeats its filler.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from bimedix import formats
from bimedix.paths import ROOT

DISTINCT = [
    ("أي مما يلي من أعراض نقص سكر الدم؟", "التعرق", "الحكة", "الطفح", "السعال"),
    ("أي مما يلي من أعراض قصور الغدة الدرقية؟", "زيادة الوزن", "الإسهال", "الأرق", "الرعشة"),
    ("ما العظم الأطول في جسم الإنسان؟", "عظم الفخذ", "عظم العضد", "الظنبوب", "الشظية"),
    ("ما الهرمون الذي يفرزه البنكرياس لخفض السكر؟", "الإنسولين", "الغلوكاغون", "الكورتيزول", "الثيروكسين"),
    ("كم عدد حجرات القلب عند الإنسان؟", "أربع", "ثلاث", "اثنتان", "خمس"),
    ("أين يحدث امتصاص معظم الغذاء؟", "الأمعاء الدقيقة", "المعدة", "المريء", "القولون"),
    ("ما الفيتامين الذي تصنعه البشرة عند التعرض للشمس؟", "فيتامين د", "فيتامين أ", "فيتامين ك", "فيتامين ج"),
    ("ما العصب المسؤول عن حركة الحجاب الحاجز؟", "العصب الحجابي", "العصب المبهم", "العصب الوجهي", "العصب الوربي"),
    ("يوصف لمريض دواء بجرعة 5 ملغ مرتين يوميا، فكم يتناول في اليوم؟", "10 ملغ", "5 ملغ", "15 ملغ", "20 ملغ"),
    ("يوصف لمريض دواء بجرعة 8 ملغ مرتين يوميا، فكم يتناول في اليوم؟", "16 ملغ", "8 ملغ", "24 ملغ", "32 ملغ"),
    ("ما الخلايا التي تنتج الأجسام المضادة؟", "الخلايا البائية", "الخلايا التائية", "الصفائح", "الخلايا الحمراء"),
    ("ما العضو الذي يصفي الدم من الفضلات؟", "الكلية", "الرئة", "الطحال", "المعدة"),
    ("أي مما يلي ينقل الأكسجين في الدم؟", "الهيموغلوبين", "الألبومين", "الفيبرينوجين", "الغلوبولين"),
    ("ما المرض الذي ينتج عن نقص الحديد؟", "فقر الدم", "الكساح", "الاسقربوط", "البلاجرا"),
]
# The off-topic filler: twelve wordings of one question with (nearly) the same options.
ASKS = ["كيف يمكن إعادة ضبط كلمة مرور جهاز التوجيه؟", "ما طريقة إعادة تعيين كلمة مرور جهاز التوجيه؟",
        "كيف تتم إعادة ضبط كلمة السر لجهاز التوجيه؟", "كيف نعيد تعيين كلمة مرور الراوتر؟"]  # fmt: skip
OPTION_SETS = [
    ("الضغط على زر إعادة الضبط", "تحديث البرنامج الثابت", "تغيير عنوان الشبكة", "إيقاف تشغيل الجهاز"),
    ("الضغط على زر إعادة التعيين", "تحديث البرنامج الثابت للجهاز", "تغيير عنوان الشبكة", "إطفاء الجهاز"),
    ("ضغط زر إعادة الضبط", "تحديث البرنامج الثابت", "تبديل عنوان الشبكة", "إيقاف تشغيل الجهاز"),
]
FILLER = [(ASKS[i % 4], *OPTION_SETS[i % 3]) for i in range(12)]


def write_file(path) -> list[int]:
    """Distinct questions with the filler spread among them; returns the filler's lines (1-based)."""
    rows, filler_lines = [], []
    for i, question in enumerate(DISTINCT):
        rows.append([*question, "A"])
        if i < len(FILLER):
            rows.append([*FILLER[i], "A"])
            filler_lines.append(len(rows))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return filler_lines


def test_the_ground_floor_clusters_rewordings_and_keeps_templated_siblings_apart():
    from bimedix.dedup import clusters

    texts = ["\n".join(q) for q in DISTINCT[:10]] + ["\n".join(q) for q in FILLER]
    [cluster] = clusters(texts)
    assert cluster.members == tuple(range(10, 22)), "the twelve wordings, and none of the distinct questions"
    assert 0.4 <= cluster.similarity < 1


def test_reworded_copies_are_used_once_and_an_off_topic_cluster_is_reported(tmp_path):
    path = tmp_path / "college_biology_test.csv"
    filler = write_file(path)
    read = formats.read_file(path, "mmlu_csv", formats.Context(language="ar", subject="college_biology"))
    assert len(read.items) == len(DISTINCT) + 1, "every distinct question, and the filler once"
    assert [i.line for i in read.items if i.question in ASKS] == [filler[0]]
    assert [(line, r.code) for line, r in read.rejects] == [(line, "reworded_repeat") for line in filler[1:]]
    assert read.rejects[0][1].reason == f"rewords the question of line {filler[0]} (audit: reworded_repeat)"
    findings = {f.code: f for f in read.audit.findings()}
    assert (findings["reworded_repeat"].count, findings["reworded_repeat"].lines) == (11, filler[1:6])
    off_topic = findings["off_topic_cluster"]
    assert (off_topic.count, off_topic.lines) == (12, filler[:5])
    assert f"lines {filler[0]}..{filler[-1]}" in off_topic.message and ASKS[0] in off_topic.message
    summary = read.audit.to_dict()
    assert summary["reworded_repeats"] == 11 and summary["reworded_clusters"][0]["size"] == 12
    assert summary["reworded_clusters"][0]["lines"] == filler


OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=OFFLINE, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.fixture
def task_folder(tmp_path):
    write_file(tmp_path / "college_biology_test.csv")
    entry = {"task": "bimedix_ar_mmlu_college_biology", "language": "ar", "path": "college_biology_test.csv",
             "format": "mmlu_csv"}  # fmt: skip
    (tmp_path / "index.yaml").write_text(json.dumps([entry], ensure_ascii=False), encoding="utf-8")
    return tmp_path


def test_convert_and_check_data_refuse_reworded_repeats_above_max_repeated(task_folder):
    path = task_folder / "college_biology_test.csv"
    convert = python("data_prep", "convert", "--format", "mmlu_csv", "--language", "ar", str(path))
    assert convert.returncode == 2, convert.stdout
    assert "11 of 26 rows repeat an earlier question with other options or reword one (11 rows)" in convert.stderr
    assert "reworded_repeat x11" in convert.stdout and "off_topic_cluster x12" in convert.stdout
    check = python("eval_tasks", "check-data", "--data", str(task_folder))
    assert check.returncode == 2 and "11 of 26 rows repeat an earlier question" in check.stderr, check.stderr
    forced = python("eval_tasks", "check-data", "--data", str(task_folder), "--max-repeated", "0.5")
    assert forced.returncode == 0, forced.stderr
    assert "15 rows scored, 11 rejected" in forced.stdout


def test_an_eval_run_counts_reworded_repeats_for_its_results(task_folder):
    from eval_tasks import data

    items, report = data.load_records("bimedix_ar_mmlu_college_biology", data.resolve_source(str(task_folder)))
    assert len(items) == 15
    counts = report.to_dict()["audit_counts"]  # what results.json's "audit" and the table footnote sum
    assert (counts["reworded_repeat"], counts["off_topic_cluster"]) == (11, 12)


def test_a_task_read_from_two_files_scores_a_reworded_question_once(tmp_path):
    from eval_tasks import data

    for name, rows in [("a.csv", [*DISTINCT[:7], FILLER[0]]), ("b.csv", [*DISTINCT[7:], FILLER[1]])]:
        with open(tmp_path / name, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([[*row, "A"] for row in rows])
    entries = [{"task": "bimedix_ar_mmlu_anatomy", "language": "ar", "path": name, "format": "mmlu_csv"}
               for name in ("a.csv", "b.csv")]  # fmt: skip
    (tmp_path / "index.yaml").write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    items, report = data.load_records("bimedix_ar_mmlu_anatomy", data.resolve_source(str(tmp_path)))
    assert len(items) == len(DISTINCT) + 1 and [i.question for i in items].count(FILLER[0][0]) == 1
    first, second = report.sources
    assert (first.rows_scored, second.rows_scored, first.rejects) == (8, 7, [])
    [reject] = second.rejects
    assert (reject.where, reject.code) == (f"{second.source}:8", "reworded_repeat")
    assert f"rewords the question of {first.source}:8" in reject.reason
    assert second.audit["reworded_repeats"] == 1 and report.to_dict()["audit_counts"]["reworded_repeat"] == 1


def test_the_search_finds_every_pair_a_brute_force_finds_in_sliced_buckets(monkeypatch):
    """Texts that share their common words fall into one large bucket; the search checks its pairs in
    slices (here of 7 pairs) and still reports exactly the pairs an all-pairs comparison reports."""
    import itertools

    from bimedix import dedup

    frame = "which of the following is the most common cause of"
    texts = [f"{frame} {w}" for w in ("anaemia", "fever", "cough", "rash", "pain", "oedema", "jaundice")]
    texts += [f"{frame} anaemia in children", f"the most common cause of fever in {frame}"]
    monkeypatch.setattr(dedup, "_SLICE", 7)
    sets = dedup.word_sets(texts)
    brute = [
        (i, j, dedup.jaccard(sets[i], sets[j]))
        for i, j in itertools.combinations(range(len(texts)), 2)
        if dedup.jaccard(sets[i], sets[j]) >= dedup.REWORDED
    ]
    assert len(brute) > 20, "the fixture must put most pairs in one bucket"
    assert dedup.similar_pairs(texts) == brute


def test_a_file_too_large_for_the_search_is_reported_not_passed_silently(tmp_path, monkeypatch):
    from bimedix import dedup

    path = tmp_path / "college_biology_test.csv"
    write_file(path)
    monkeypatch.setattr(dedup, "PAIR_LIMIT", 10)
    read = formats.read_file(path, "mmlu_csv", formats.Context(language="ar", subject="college_biology"))
    [finding] = [f for f in read.audit.findings() if f.code == "reworded_not_audited"]
    assert finding.count == len(DISTINCT) + 12 and not finding.reject
    assert "candidate pairs (limit 10;" in finding.message
    assert len(read.items) == len(DISTINCT) + 12, "nothing dropped on a guess"
    assert read.audit.reworded_count == 0
