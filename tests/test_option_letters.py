"""The one letter table (bimedix.mcq): the Arabic option letters real exam files use, هـ above all.

Real Arabic exam files write option E as هـ. (heh + tatweel, the usual printed form) as well as ه.;
a reader that does not know it reads four options and folds E's line into D (issue 25).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from bimedix import formats
from bimedix.formats import Context
from bimedix.paths import ROOT

TATWEEL = "\u0640"
HEH_TATWEEL = "ه" + TATWEEL  # هـ

# Our own native-Arabic questions in MedArabiQ's layout: five options, E written هـ. (and هـ) once).
FIVE = [
    (
        "أي مما يلي من وظائف الكبد؟\nأ. تخزين الغليكوجين\nب. إفراز الإنسولين\nج. إنتاج الصفراء في المعدة\n"
        f"د. تكوين الكريات الحمراء عند البالغ\n{HEH_TATWEEL}. تصفية البول",
        "أ. تخزين الغليكوجين",
        "Physiology",
    ),
    (
        f"ما العصب الذي يعصب الحجاب الحاجز؟\nأ. المبهم\nب. الوربي\nج. الوجهي\nد. تحت اللسان\n{HEH_TATWEEL}. الحجابي",
        f"{HEH_TATWEEL}. الحجابي",
        "Anatomy",
    ),
    (
        "أي الفيتامينات يذوب في الدهون؟\nأ) فيتامين ج\nب) فيتامين ب١٢\nج) حمض الفوليك\nد) الثيامين\n"
        f"{HEH_TATWEEL}) فيتامين د",
        "فيتامين د",
        "Biochemistry",
    ),
]
# Lines that cannot be told apart: a letter the table lacks (ز) where E is due; B given twice.
INSEPARABLE = [
    (
        "ما سبب فقر الدم المنجلي؟\nأ. طفرة نقطية\nب. نقص الحديد\nج. نزف حاد\nد. عدوى\nز. سوء التغذية",
        "أ. طفرة نقطية",
        "",
    ),
    ("ما ناقل الملاريا؟\nأ. البعوض\nب. الذباب\nب. القمل\nج. البراغيث", "أ. البعوض", ""),
]


def write_medarabiq(path, rows) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Question", "Answer", "Category"])
        writer.writerows(rows)


@pytest.mark.parametrize(
    ("line", "position", "script"),
    [
        (f"{HEH_TATWEEL}. نص", 4, "arabic"),
        (f"{HEH_TATWEEL}{TATWEEL}) نص", 4, "arabic"),
        (f"({HEH_TATWEEL}) نص", 4, "arabic"),
        ("ه- نص", 4, "arabic"),
        ("إ: نص", 0, "arabic"),
        ("ا، نص", 0, "arabic"),
        ("و. نص", 5, "arabic"),
        ("\u200fب.\u00a0نص", 1, "arabic"),
        ("٣- نص", 2, "number"),
        ("۴) نص", 3, "number"),
        ("(J) text", 9, "latin"),
        ("ز. نص", None, "arabic"),
    ],
)
def test_the_letter_table_reads_labels_as_files_write_them(line, position, script):
    from bimedix.mcq import option_label

    label = option_label(line)
    assert (label.position, label.script, label.text) == (position, script, "text" if script == "latin" else "نص")


def test_medarabiq_options_lettered_with_heh_tatweel_are_five(tmp_path):
    path = tmp_path / "multiple-choice-questions.csv"
    write_medarabiq(path, FIVE)
    read = formats.read_file(path, "medarabiq_csv", Context(language="ar"))
    assert read.rejects == []
    assert [(len(i.options), i.letter) for i in read.items] == [(5, "A"), (5, "E"), (5, "E")]
    assert read.items[0].options[3] == "تكوين الكريات الحمراء عند البالغ", "D does not swallow E's line"
    assert read.items[0].options[4] == "تصفية البول"


def test_medarabiq_options_that_cannot_be_told_apart_are_refused_with_file_line(tmp_path):
    path = tmp_path / "mcq.csv"
    write_medarabiq(path, INSEPARABLE)
    read = formats.read_file(path, "medarabiq_csv", Context(language="ar"))
    assert read.items == []
    assert [(line, r.code) for line, r in read.rejects] == [(2, "bad_options"), (8, "bad_options")]
    assert "line 6 of field 'Question' ('ز. سوء التغذية')" in read.rejects[0][1].reason
    assert "line 4 of field 'Question' ('ب. القمل')" in read.rejects[1][1].reason
    assert read.audit.lines()[0].startswith(f"{path}:2,8: bad_options x2: option labels not in order")


def test_options_numbered_in_arabic_indic_digits_and_a_stems_own_numbered_list():
    convert = formats.FORMATS["medarabiq_csv"].convert
    numbered = {"Question": "ما أكبر عضو في الجسم؟\n١. القلب\n٢. الجلد\n٣. الكبد", "Answer": "٢. الجلد"}
    item = convert(numbered, Context(), 1)
    assert (item.options, item.letter) == (("القلب", "الجلد", "الكبد"), "B")
    row = {
        "Question": "أي العبارتين صحيحة؟\n١. الأولى\n٢. الثانية\nأ. ١ فقط\nب. ٢ فقط\nج. كلتاهما",
        "Answer": "ج. كلتاهما",
    }
    item = convert(row, Context(), 1)
    assert item.question == "أي العبارتين صحيحة؟\n١. الأولى\n٢. الثانية", (
        "a numbered list before the letters is the stem's"
    )
    assert (item.options, item.letter) == (("١ فقط", "٢ فقط", "كلتاهما"), "C")


def test_a_normalised_mcq_with_a_heh_tatweel_option_has_five():
    row = {
        "question": "ما الهرمون الذي يفرزه البنكرياس؟",
        "options": f"(أ) الثيروكسين\n(ب) الكورتيزول\n(ج) الألدوستيرون\n(د) البرولاكتين\n({HEH_TATWEEL}) الإنسولين",
        "answer": f"({HEH_TATWEEL})",
    }
    item = formats.FORMATS["mcq_json"].convert(row, Context(), 1)
    assert (len(item.options), item.letter, item.options[3]) == (5, "E", "البرولاكتين")


OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def check_data(folder, *args):
    return subprocess.run(
        [sys.executable, "-m", "eval_tasks", "check-data", "--data", str(folder), *args],
        cwd=ROOT, env=OFFLINE, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def write_index(folder, name):
    entry = {"task": "bimedix_ar_medarabiq", "language": "ar", "path": name, "format": "medarabiq_csv"}
    (folder / "index.yaml").write_text(json.dumps([entry], ensure_ascii=False), encoding="utf-8")


def test_check_data_scores_heh_tatweel_questions_as_five_option_questions(tmp_path):
    write_medarabiq(tmp_path / "mcq.csv", FIVE)
    write_index(tmp_path, "mcq.csv")
    out = check_data(tmp_path, "--items", str(tmp_path / "items.jsonl"))
    assert out.returncode == 0, out.stderr
    scored = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(s["options"], s["letter"]) for s in scored] == [(5, "A"), (5, "E"), (5, "E")]


def test_check_data_refuses_a_file_whose_options_cannot_be_told_apart(tmp_path):
    write_medarabiq(tmp_path / "mcq.csv", [*FIVE, *INSEPARABLE])
    write_index(tmp_path, "mcq.csv")
    out = check_data(tmp_path)
    assert out.returncode == 2
    assert f"{tmp_path}/mcq.csv: 2 of 5 rows rejected" in out.stderr
    assert f"{tmp_path}/mcq.csv:20,26: bad_options x2: option labels not in order: line 6 of field" in out.stdout
