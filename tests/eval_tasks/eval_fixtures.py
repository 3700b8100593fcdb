"""Helpers of the eval_tasks tests: small benchmark folders written here, in the original formats.

`edge_data` holds one file per format with the Arabic and English edge cases the loaders must
handle (diacritics, tatweel, Arabic-Indic digits, direction marks, Arabic option letters, mixed
script) and rows that must be rejected (answer not among the options, an empty option, an unknown
PubMedQA decision). Its golden counts are EDGE_COUNTS.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

RLM, TATWEEL = "\u200f", "\u0640"

# task -> (rows in file, rows scored, rows rejected)
EDGE_COUNTS = {
    "bimedix_en_medqa": (3, 1, 2),  # the 5-option row is not scored by the 4-option task
    "bimedix_ar_medmcqa": (4, 3, 1),
    "bimedix_ar_mmlu_anatomy": (3, 2, 1),
    "bimedix_ar_mmlu_college_biology": (3, 2, 1),
    "bimedix_ar_pubmedqa": (3, 2, 1),
}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_index(folder: Path, entries: list[dict]) -> Path:
    import yaml

    path = folder / "index.yaml"
    path.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def write_edge_data(root: Path) -> Path:
    write_jsonl(
        root / "medqa.jsonl",
        [
            {
                "question": "Which vitamin deficiency causes night blindness?",
                "answer": "Vitamin A",
                "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K"},
                "meta_info": "step1",
                "answer_idx": "A",
            },
            # five options (MedQA's 5-option layout): not scored by the 4-option MedQA task
            {
                "question": "Which organ secretes insulin?",
                "answer": "Pancreas",
                "options": {"A": "Liver", "B": "Spleen", "C": "Kidney", "D": "Stomach", "E": "Pancreas"},
                "meta_info": "step1",
                "answer_idx": "E",
            },
            {
                "question": "Which bone is in the forearm?",
                "answer": "Ulna",
                "options": {"A": "Femur", "B": "Ulna", "C": "Tibia", "D": "Fibula"},
                "meta_info": "step1",
                "answer_idx": "F",
            },  # not an option
        ],
    )
    write_jsonl(
        root / "medmcqa_ar.jsonl",
        [
            {
                "id": "ar-1",
                "question": "تُعَدُّ بقع بيتو علامةً على نقص:",
                "opa": "فيتامين A",
                "opb": "فيتامين B1",
                "opc": "فيتامين C",
                "opd": "فيتامين D",
                "cop": 1,
                "choice_type": "single",
                "exp": "",
                "subject_name": "طب العيون",
                "topic_name": "",
            },
            {
                "id": "ar-2",
                "question": "الدواء المفضل لصدمة الحساسية المفرطة:",
                "opa": "الهيدروكورتيزون",
                "opb": "الأدرينالين",
                "opc": "مضاد الهيستامين",
                "opd": "الأتروبين",
                "cop": "٢",
                "choice_type": "single",
                "exp": "",
                "subject_name": "",
                "topic_name": "",
            },
            {
                "id": "ar-3",
                "question": f"{RLM}عامل التخثر الذي لا يعتمد على فيتامين K هو:",
                "opa": "II",
                "opb": "VII",
                "opc": "VIII",
                "opd": "X",
                "cop": f"{RLM}٣ ",
                "choice_type": "single",
                "exp": "",
                "subject_name": "",
                "topic_name": "",
            },
            {
                "id": "ar-4",
                "question": "أول سن دائمة تبزغ:",
                "opa": "القاطعة",
                "opb": "الرحى الأولى",
                "opc": "الناب",
                "opd": "الضاحكة",
                "cop": 5,
                "choice_type": "single",
                "exp": "",
                "subject_name": "",
                "topic_name": "",
            },
        ],
    )
    with open(root / "anatomy_ar.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            ["ما العصب الذي يعصّب الحجاب الحاجز؟", "المبهم", "الحجابي", "الوربي", "الإضافي", f"{RLM}ب{TATWEEL}"]
        )  # Arabic letter key
        writer.writerow(
            ["كم زوجًا من الأضلاع لدى البالغ؟\nاختر واحدًا.", "١٠", "١١", "١٢", "١٤", "C"]
        )  # a quoted newline
        writer.writerow(["ما أكبر عظم في الجسم؟", "الفخذ", "العضد", "الزند", "الشظية", "E"])  # not an option
    (root / "biology_ar.json").write_text(
        json.dumps(
            [
                {
                    "question": "ما العضية المسؤولة عن إنتاج ATP؟",
                    "options": "(أ) الريبوسوم\n(ب) الميتوكوندريا\n(ج) جهاز غولجي\n(د) الجسيم الحال",
                    "answer": "(ب)",
                    "source": "mmlu-medical-ar",
                },
                {
                    "question": "تُسرِّع الإنـزيمات التفاعلات عن طريق:",
                    "options": "(A) رفع طاقة التنشيط\n(B) خفض طاقة\nالتنشيط\n(C) تغيير الاتزان\n(D) استهلاكها",
                    "answer": " (B) ",
                    "source": "mmlu-medical-ar",
                },
                {
                    "question": "سؤال بخيار فارغ",
                    "options": "(A) أ\n(B) \n(C) ج\n(D) د",
                    "answer": "(A)",
                    "source": "mmlu-medical-ar",
                },
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    (root / "pubmedqa_ar.json").write_text(
        json.dumps(
            {
                "91000001": {
                    "QUESTION": "هل يقلل التحريك المبكر مدة الإقامة؟",
                    "CONTEXTS": ["خلفية.", "نتائج: 9 أيام مقابل 13 يومًا."],
                    "LABELS": ["BACKGROUND", "RESULTS"],
                    "MESHES": [],
                    "YEAR": "2017",
                    "final_decision": "yes",
                    "LONG_ANSWER": "نعم.",
                },
                "91000002": {
                    "QUESTION": "هل يتنبأ اللاكتات بالوفاة؟",
                    "CONTEXTS": ["نتائج غير حاسمة."],
                    "LABELS": ["RESULTS"],
                    "MESHES": [],
                    "YEAR": "2019",
                    "final_decision": "ربما",
                    "LONG_ANSWER": "ربما.",
                },
                "91000003": {
                    "QUESTION": "سؤال بقرار غير معروف",
                    "CONTEXTS": ["-"],
                    "LABELS": ["RESULTS"],
                    "MESHES": [],
                    "YEAR": "2019",
                    "final_decision": "unclear",
                    "LONG_ANSWER": "",
                },
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    write_index(
        root,
        [
            {"task": "bimedix_en_medqa", "language": "en", "path": "medqa.jsonl", "format": "medqa"},
            # cop 1, ٢, ٣ and 5: no cop 0 or 4, so the file cannot tell its base: declared
            {
                "task": "bimedix_ar_medmcqa",
                "language": "ar",
                "path": "medmcqa_ar.jsonl",
                "format": "medmcqa",
                "cop_base": 1,
            },
            {"task": "bimedix_ar_mmlu_anatomy", "language": "ar", "path": "anatomy_ar.csv", "format": "mmlu_csv"},
            {
                "task": "bimedix_ar_mmlu_college_biology",
                "language": "ar",
                "path": "biology_ar.json",
                "format": "mcq_json",
            },
            {"task": "bimedix_ar_pubmedqa", "language": "ar", "path": "pubmedqa_ar.json", "format": "pubmedqa"},
        ],
    )
    return root
