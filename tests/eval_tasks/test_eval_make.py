"""End to end: `make eval` scores the tiny model on all 18 tasks of the embedded sample, offline, and
writes results with provenance and the three tables; the CLI's bad-input paths give one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from bimedix.paths import ROOT
from eval_tasks import registry

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)

OFFLINE = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONPATH": str(ROOT),
}


def cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eval_tasks", *args], cwd=cwd, env=OFFLINE, capture_output=True, text=True, timeout=600
    )


def test_make_eval_on_the_tiny_model(tiny_model_dir, tmp_path):
    out = subprocess.run(
        ["make", "eval", f"RESULTS_DIR={tmp_path}", "RUN=e2e"],
        cwd=ROOT,
        env=OFFLINE,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "e2e"
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    tasks = [t for t in registry.all_tasks() if "medarabiq" not in t]
    assert set(tasks) <= set(results["results"]) and len(tasks) == 18
    assert results["n-samples"]["bimedix_ar_medarabiq"]["effective"] == 6, "the sample lists MedArabiQ: run by default"
    for task in tasks:
        assert 0.0 <= results["results"][task]["acc,none"] <= 1.0
        assert results["n-samples"][task]["effective"] == 6
    meta = results["bimedix"]
    assert meta["model"].endswith("tiny-bimedix-moe") and meta["adapter"] is None and meta["backend"] == "hf"
    assert meta["task_versions"] == {
        t: 1.0 for t in [*tasks, "bimedix_ar_medarabiq", "bimedix_en", "bimedix_ar", "bimedix_bilingual"]
    }
    assert (
        meta["eval_data"] == "sample"
        and meta["eval_data_root"].endswith("eval_tasks/sample_data")
        and meta["questions"] == 114
        and meta["rows_rejected"] == 0
    )
    assert meta["date"] and set(meta["data"]) == {*tasks, "bimedix_ar_medarabiq"} and meta["audit"] == {}
    assert "EVAL_DATA=sample: scoring the embedded SYNTHETIC sample" in out.stderr
    assert len(list((run / "samples").glob("*.jsonl"))) == 19
    arabic = pd.read_csv(run / "table_arabic.csv")
    assert list(arabic.columns)[-2:] == ["AVG", "MedArabiQ"] and pd.notna(arabic["MedArabiQ"].iloc[-1])
    # the group score is the plain mean of the two languages, each the plain mean of its nine tasks
    en = sum(results["results"][t]["acc,none"] for t in tasks[:9]) / 9
    ar = sum(results["results"][t]["acc,none"] for t in tasks[9:]) / 9
    assert results["results"]["bimedix_bilingual"]["acc,none"] == pytest.approx((en + ar) / 2)
    bilingual = pd.read_csv(run / "table_bilingual.csv")
    assert bilingual["Model"].iloc[-1] == "tiny-bimedix-moe [sample data]"
    assert bilingual["AVG"].iloc[-1] == pytest.approx(100 * (en + ar) / 2, abs=0.01)
    assert (run / "tables.png").stat().st_size > 10_000
    assert "## Bilingual Benchmark" in out.stdout and "tiny-bimedix-moe [sample data]" in out.stdout


def test_rejected_rows_are_listed_not_scored_and_the_generative_variant_runs(tiny_model_dir, edge_data, tmp_path):
    out = cli(
        "run", "--model", str(tiny_model_dir), "--data", str(edge_data), "--results-dir", str(tmp_path), "--run-name", "edge",
        "--tasks", "bimedix_ar_medmcqa,bimedix_en_medqa,bimedix_ar_pubmedqa_gen", "--chat-template", "--system", "project",
        "--max-rejected", "1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "edge" / "results.json").read_text(encoding="utf-8"))
    assert (
        results["n-samples"]["bimedix_ar_medmcqa"]["effective"] == 3
        and results["n-samples"]["bimedix_en_medqa"]["effective"] == 1
    )
    assert set(results["results"]["bimedix_ar_pubmedqa_gen"]) >= {"acc,none", "answered,none"}
    meta = results["bimedix"]
    assert meta["rows_rejected"] == 4 and meta["chat_template"] is True and "BiMediX" in meta["system_instruction"]
    assert (
        meta["audit"] == {"answer_not_in_options": 3, "option_count": 1}
        and meta["audit_limits"]["max_rejected_share"] == 1
    )
    [reject] = meta["data"]["bimedix_ar_medmcqa"]["sources"][0]["rejects"]
    assert reject["where"].endswith("medmcqa_ar.jsonl:4") and reject["reason"] == "cop 5 is not in 1..4 (1-based)"
    sample = json.loads(
        (tmp_path / "edge" / "samples" / "bimedix_ar_medmcqa.jsonl").read_text(encoding="utf-8").splitlines()[0]
    )
    assert sample["arguments"][0][0].startswith("<s>[INST] You are BiMediX"), "the project's chat template"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "--tasks", "bimedix_en_medqq"],
            "error: unknown task bimedix_en_medqq; groups: bimedix_ar, bimedix_ar_gen,",
        ),
        (["run", "--data", "no/such/folder"], "error: EVAL_DATA: no/such/folder: no such folder or index file"),
        (["run", "--model", "models/no-such-model"], "error: model models/no-such-model: no such folder"),
        (["run", "--backend", "vllm"], "error: backend vllm: the vllm package is not installed here"),
        (["run", "--backend", "tgi"], "error: unknown backend 'tgi' (use one of hf, vllm, api)"),
        (
            ["run", "--data", "hub", "--tasks", "bimedix_ar_medqa"],
            "error: bimedix_ar_medqa: cannot load BiMediX/medqa-test_arabic split 'train' from the Hugging Face hub:",
        ),
        (["tables", "no/such/run"], "error: no/such/run: not found"),
    ],
)
def test_bad_input_gives_one_line_errors(tiny_model_dir, args, message):
    out = cli(*args)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr[-2000:]


def test_a_malformed_local_file_fails_before_the_model_loads(tiny_model_dir, tmp_path):
    (tmp_path / "index.yaml").write_text(
        "- {task: bimedix_ar_medqa, language: ar, path: q.jsonl, format: medqa}\n", encoding="utf-8"
    )
    (tmp_path / "q.jsonl").write_text(
        '{"question": "س", "options": {"A": "أ", "B": "ب", "C": "ج", "D": "د"}, "answer_idx": "A"}\n{"question": \n',
        encoding="utf-8",
    )
    out = cli("run", "--data", str(tmp_path), "--tasks", "bimedix_ar")
    assert (
        out.returncode == 2
        and out.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path}/index.yaml: no entry for task bimedix_ar_mmlu_clinical_knowledge"
    )
    out = cli("run", "--data", str(tmp_path), "--tasks", "bimedix_ar_medqa")
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(
        f"error: {tmp_path}/q.jsonl: 1 of 2 rows rejected (50.0%, above the limit 10%): invalid_json 1"
    )
    assert "Loading" not in out.stderr and "model" not in out.stderr.lower()


def test_check_data_counts_every_row(edge_data):
    refused = cli("check-data", "--data", str(edge_data))
    assert refused.returncode == 2 and refused.stderr.startswith(
        f"error: {edge_data}/medqa.jsonl: 2 of 3 rows rejected"
    )
    out = cli("check-data", "--data", str(edge_data), "--max-rejected", "0.7")
    assert out.returncode == 0, out.stderr
    assert "5 tasks from" in out.stdout and "10 rows scored, 6 rejected" in out.stdout
    assert "not scored:" in out.stdout and "answer_idx 'F' is not one of the options A B C D" in out.stdout
    assert (
        "audit (not scored): " in out.stdout and "option_count x1: 5 options, but task bimedix_en_medqa" in out.stdout
    )
