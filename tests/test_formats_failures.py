"""The eight failures of issue 12, each on the project's own fixtures, through the public commands.

Written against the commands and entry points that existed before the format layer too
(`python -m data_prep convert|build`, `python -m eval_tasks check-data`, `lm_eval`,
`eval_tasks.data.load_records`), so each test also runs, and fails, on the code as it was.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bimedix.paths import ROOT

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def run(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BIMEDIX_EVAL")}
    environment |= OFFLINE | (env or {})
    return subprocess.run([*args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", *args, **kwargs)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_index(folder: Path, entries: list[dict]) -> Path:
    lines = ["- " + json.dumps(entry, ensure_ascii=False) for entry in entries]
    (folder / "index.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def medqa_rows(count: int, options: str = "ABCD") -> list[dict]:
    rows = []
    for i in range(count):
        texts = {letter: f"Option {letter} number {i}" for letter in options}
        rows.append({"question": f"Which finding is typical of disease number {i}?", "options": texts,
                     "answer_idx": options[i % len(options)], "answer": texts[options[i % len(options)]]})  # fmt: skip
    return rows


# -- 1. MedMCQA counting cop from 0 (the hub export) -----------------------------------------------------


def test_1_a_zero_based_medmcqa_file_is_scored_with_the_right_letters(tmp_path):
    cops = [0, 1, 2, 3, 0, 1, 2, 3]
    rows = [{"question": f"Which nerve supplies muscle number {i}?", "opa": "Radial", "opb": "Ulnar", "opc": "Median",
             "opd": "Axillary", "cop": c} for i, c in enumerate(cops)]  # fmt: skip
    write_jsonl(tmp_path / "medmcqa_validation.jsonl", rows)
    write_index(tmp_path, [{"task": "bimedix_en_medmcqa", "language": "en", "path": "medmcqa_validation.jsonl",
                            "format": "medmcqa"}])  # fmt: skip
    out = python("eval_tasks", "check-data", "--data", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "1 tasks from" in out.stdout and "8 rows scored, 0 rejected" in out.stdout, out.stdout
    from eval_tasks import data

    items, _ = data.load_records("bimedix_en_medmcqa", data.resolve_source(str(tmp_path)))
    assert [item.answer for item in items] == cops, "cop 0 is option A in the hub export"


def test_1_the_hub_cop_base_is_checked_not_trusted(monkeypatch):
    import datasets

    from eval_tasks import data

    rows = [{"question": "ما العصب الذي يغذي العضلة الدالية؟", "opa": "الكعبري", "opb": "الزندي", "opc": "المتوسط",
             "opd": "الإبطي", "cop": c} for c in (1, 4, 2, 3)]  # fmt: skip
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(rows))
    with pytest.raises(data.EvalDataError, match=r"cop_base 0 .* contradicts the file: cop 4 occurs"):
        data.load_records("bimedix_ar_medmcqa", data.resolve_source("hub"))


# -- 2. plain lm-eval without a data source ---------------------------------------------------------------


def test_2_plain_lm_eval_does_not_score_the_synthetic_sample_silently(tiny_model_dir, tmp_path):
    common = ["--model", "hf", "--model_args", f"pretrained={tiny_model_dir}", "--tasks", "bimedix_en_medqa",
              "--include_path", "eval_tasks", "--limit", "2", "--device", "cpu", "--batch_size", "2"]  # fmt: skip
    bare = run(sys.executable, "-m", "lm_eval", *common)
    assert bare.returncode != 0, bare.stdout[-2000:]
    assert "no benchmark data named" in bare.stderr and "eval_data" in bare.stderr
    named = run(sys.executable, "-m", "lm_eval", *common, "--metadata", '{"eval_data": "sample"}',
                "--output_path", str(tmp_path / "out"))  # fmt: skip
    assert named.returncode == 0, named.stderr[-3000:]
    assert "EVAL_DATA=sample: scoring the embedded SYNTHETIC sample" in named.stderr
    [results] = (tmp_path / "out").rglob("results_*.json")
    configs = json.loads(results.read_text(encoding="utf-8"))["configs"]
    assert configs["bimedix_en_medqa"]["metadata"]["eval_data"] == "sample", "the results name the data"


# -- 3. one question repeated through a file (AceGPT's Arabic MMLU) ----------------------------------------


def write_repeated_mmlu(path: Path) -> Path:
    """Arabic MMLU CSV: six questions, then one off-topic question eight more times, re-translated with other
    options (as AceGPT's professional_medicine repeats 'how is IP spoofing detected'), one copy exact."""
    rows = [[f"ما العضو المسؤول عن الوظيفة رقم {i} في الجسم؟", "القلب", "الكبد", "الكلية", "الرئة", "ABCD"[i % 4]]
            for i in range(6)]  # fmt: skip
    off_topic = "كيف يتم اكتشاف تزوير عنوان IP؟"
    for i in range(8):
        rows.append([off_topic, f"تثبيت نظام كشف {i}", "مقارنة قيم TTL", "جدار حماية", "جلسات TCP", "B"])
    rows.append(rows[6])  # an exact copy too
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def test_3_a_question_repeated_through_a_file_is_not_accepted_silently(tmp_path):
    path = write_repeated_mmlu(tmp_path / "professional_medicine_test.csv")
    convert = python("data_prep", "convert", "--format", "mmlu_csv", "--language", "ar", str(path))
    assert convert.returncode == 2, convert.stdout
    assert "7 of 15 rows repeat an earlier question with other options" in convert.stderr
    assert "repeated_question x7" in convert.stdout and "duplicate x1" in convert.stdout
    write_index(tmp_path, [{"task": "bimedix_ar_mmlu_professional_medicine", "language": "ar",
                            "path": path.name, "format": "mmlu_csv"}])  # fmt: skip
    check = python("eval_tasks", "check-data", "--data", str(tmp_path))
    assert check.returncode == 2 and "7 of 15 rows repeat an earlier question" in check.stderr, check.stderr
    forced = python("eval_tasks", "check-data", "--data", str(tmp_path), "--max-repeated", "0.5")
    assert forced.returncode == 0 and "14 rows scored, 1 rejected" in forced.stdout, forced.stdout


# -- 4. every row rejected ---------------------------------------------------------------------------------


def test_4_convert_fails_when_every_row_is_rejected(tmp_path):
    rows = [{**row, "answer_idx": "Z"} for row in medqa_rows(5)]
    out = python("data_prep", "convert", "--format", "medqa", str(write_jsonl(tmp_path / "medqa.jsonl", rows)))
    assert out.returncode != 0, out.stdout
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "medqa.jsonl: nothing usable: all 5 rows rejected (mostly answer_not_in_options" in error


# -- 5. a MedQA file given as MedMCQA ------------------------------------------------------------------


def test_5_the_wrong_format_names_the_missing_field(tmp_path):
    path = write_jsonl(tmp_path / "medqa.jsonl", medqa_rows(4))
    out = python("data_prep", "convert", "--format", "medmcqa", str(path))
    assert out.returncode != 0
    assert "missing field 'opa'" in out.stderr and "mix" not in out.stderr, out.stderr


# -- 6. 5-option MedQA in the 4-option task ------------------------------------------------------------------


def test_6_five_option_medqa_is_not_scored_by_the_four_option_task(tmp_path):
    write_jsonl(tmp_path / "medqa_5options.jsonl", medqa_rows(6, "ABCDE"))
    write_index(tmp_path, [{"task": "bimedix_en_medqa", "language": "en", "path": "medqa_5options.jsonl",
                            "format": "medqa"}])  # fmt: skip
    out = python("eval_tasks", "check-data", "--data", str(tmp_path))
    assert out.returncode != 0, out.stdout
    assert "5 options, but task bimedix_en_medqa scores 4-option questions" in out.stdout + out.stderr


# -- 7. an invalid UTF-8 byte in an eval file ---------------------------------------------------------------


def test_7_an_invalid_byte_is_reported_by_file_and_line(tmp_path):
    lines = [json.dumps(row).encode() for row in medqa_rows(20)]
    lines[2] = lines[2].replace(b"typical", b"typ\xffical")
    (tmp_path / "medqa_test.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    write_index(tmp_path, [{"task": "bimedix_en_medqa", "language": "en", "path": "medqa_test.jsonl",
                            "format": "medqa"}])  # fmt: skip
    out = python("eval_tasks", "check-data", "--data", str(tmp_path))
    assert "medqa_test.jsonl:3: not valid UTF-8 (byte 35 of the line is 0xff)" in out.stdout, out.stdout + out.stderr
    assert out.returncode == 0 and "19 rows scored, 1 rejected" in out.stdout


# -- 8. decontamination against what is scored ----------------------------------------------------------------


def test_8_decontamination_removes_exactly_the_scored_items(tiny_model_dir, tmp_path):
    """The eval index keeps 2 of 4 PubMedQA questions (`ids`); a training file holding all 4 loses those 2 only."""
    texts = [
        "Does early mobilisation after hip fracture surgery shorten the hospital stay of elderly patients in a regional hospital?",
        "Is serum lactate on admission a reliable predictor of mortality among adults with community acquired sepsis?",
        "Can a nurse led telephone follow up programme reduce readmissions of children discharged after asthma attacks?",
        "Do vitamin D supplements given during pregnancy lower the rate of low birth weight in rural clinics?",
    ]
    questions = {str(90000 + i): text for i, text in enumerate(texts)}
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    pqal = {pmid: {"QUESTION": q, "CONTEXTS": ["Background of the trial.", "Results of the trial."],
                   "final_decision": "yes", "LONG_ANSWER": "Yes."} for pmid, q in questions.items()}  # fmt: skip
    (eval_dir / "ori_pqal.json").write_text(json.dumps(pqal), encoding="utf-8")
    (eval_dir / "test_ground_truth.json").write_text(json.dumps({"90000": "yes", "90002": "yes"}), encoding="utf-8")
    index = write_index(eval_dir, [{"task": "bimedix_en_pubmedqa", "language": "en", "path": "ori_pqal.json",
                                    "format": "pubmedqa", "ids": "test_ground_truth.json"}]) / "index.yaml"  # fmt: skip
    train = tmp_path / "train_pqal.json"
    train.write_text(json.dumps(pqal), encoding="utf-8")
    (tmp_path / "mix.yaml").write_text(
        f"name: decontam\nval_fraction: 0\nsources:\n  - {{name: pqal, format: pubmedqa, path: {train}}}\n",
        encoding="utf-8",
    )
    env = {"BIMEDIX_EVAL_DATA": str(index), "BIMEDIX_EVAL_INDEX": str(index)}
    out = python("data_prep", "build", "--mix", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "out"),
                 "--tokenizer", str(tiny_model_dir), "--workers", "1", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "out" / "decontam" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"][0]["counts"]["decontaminated"] == 2, "only the two scored PMIDs"
    decontamination = manifest["filters"]["decontamination"]
    assert decontamination["eval_data"] == str(index) and len(decontamination["sha256"]) == 64


def test_8_a_hub_eval_set_missing_from_the_cache_is_a_one_line_error(tiny_model_dir, tmp_path):
    out = python("data_prep", "build", "--mix", "data_prep/mixes/arabic.yaml", "--out", str(tmp_path / "out"),
                 "--tokenizer", str(tiny_model_dir), "--workers", "1",
                 env={"BIMEDIX_EVAL_DATA": "hub", "HF_HOME": str(tmp_path / "empty_cache")})  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "not in the local datasets cache" in error and "check-data --data hub" in error
    assert "--no-decontaminate" in error


def test_8_a_cached_hub_eval_set_is_what_the_build_decontaminates_against(monkeypatch, tmp_path):
    """EVAL_DATA=hub reads the scored set from the local datasets cache (here: a local dataset folder)."""
    from data_prep.decontam import load_eval_index
    from eval_tasks import registry

    folder = write_jsonl(tmp_path / "medqa_train.jsonl", medqa_rows(3)).parent
    monkeypatch.setattr(registry, "hub_sources", lambda: {"bimedix_en_medqa": {"path": str(folder), "split": "train"}})
    index = load_eval_index("hub")
    assert index.source == "hub" and len(index.tasks) == 3 and set(index.tasks) == {"bimedix_en_medqa"}
