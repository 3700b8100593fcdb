"""The learning benchmark's own logic, offline and fast: the split by question hash keeps every scored
question out of training, and the statistics are the textbook ones. The benchmark itself (a training
run) is not run here: `make bench-learn`, figures in benchmarks/README.md."""

from __future__ import annotations

import json

import pytest
import yaml

from benchmarks import bench_learn
from bimedix.paths import ROOT


def test_wilson_interval_and_exact_mcnemar():
    low, high = bench_learn.wilson(30, 100)
    assert (round(low, 4), round(high, 4)) == (0.2189, 0.3958)  # the Wilson 95% interval of 30/100
    assert bench_learn.wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and bench_learn.wilson(10, 10)[1] == 1.0
    assert bench_learn.mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert bench_learn.mcnemar_exact(7, 2) == pytest.approx(0.1796875)
    assert bench_learn.mcnemar_exact(5, 5) == 1.0 and bench_learn.mcnemar_exact(0, 0) == 1.0


def test_accuracy_pairs_the_same_questions_and_shows_the_position_bias():
    golds = [0, 1, 2]
    before = {("t", i): {"right": int(g == 0), "chosen": 0, "gold": g} for i, g in enumerate(golds)}
    after = {("t", i): {"right": int(i > 0), "chosen": g if i else 3, "gold": g} for i, g in enumerate(golds)}
    summary = bench_learn.summarize_accuracy(before, after, 0.95)
    assert (summary["gained"], summary["lost"]) == (2, 1)
    assert (summary["before"]["correct"], summary["after"]["correct"]) == (1, 2)
    assert summary["chosen_letters_before"] == {"A": 3} and summary["chosen_letters_after"] == {"B": 1, "C": 1, "D": 1}
    assert summary["gold_letters"] == {"A": 1, "B": 1, "C": 1} and summary["majority_letter_baseline"] == 0.3333
    with pytest.raises(bench_learn.BenchError, match="different questions"):
        bench_learn.summarize_accuracy(before, {("t", 0): before[("t", 0)]}, 0.95)


def test_the_split_by_question_hash_keeps_scored_questions_out_of_training(tmp_path):
    settings = yaml.safe_load((ROOT / "benchmarks" / "bench_learn.yaml").read_text(encoding="utf-8"))
    settings["work"] = str(tmp_path / "work")
    settings["real"] = {**settings["real"], "scored": 5, "train": 8}
    real = tmp_path / "realdata"
    source = real / settings["real"]["file"]
    source.parent.mkdir(parents=True)
    rows = [{"question": f"Question number {i} about anatomy?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": i % 4} for i in range(20)]  # fmt: skip
    rows += [{**rows[3], "question": "  QUESTION number 3   about anatomy?"}, {**rows[11]}]  # the same questions again
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    bench = bench_learn.Bench(settings, ROOT / "models" / "unused", real, tmp_path / "log")
    summary = bench.split_real()
    work = tmp_path / "work"
    scored = [json.loads(line)["question"] for line in (work / "source" / "scored.jsonl").read_text().splitlines()]
    train = [json.loads(line)["question"] for line in (work / "source" / "train.jsonl").read_text().splitlines()]
    hashes = {bench_learn.question_hash(q) for q in scored}
    assert not hashes & {bench_learn.question_hash(q) for q in train}
    assert summary["shared_question_hashes"] == 0 and summary["distinct_questions"] == 20
    assert summary["scored_questions"] == len(scored) >= 5 and summary["train_questions"] == len(train) >= 8
    assert len(scored) + len(train) < len(rows)  # the rest is left out
    index = yaml.safe_load((work / "index.yaml").read_text())
    assert index == [{"task": "bimedix_en_medmcqa", "language": "en", "path": "source/scored.jsonl", "format": "medmcqa", "cop_base": 0}]  # fmt: skip
    mix = yaml.safe_load((work / "mix.yaml").read_text())
    assert mix["name"] == "bilingual" and mix["sources"][0]["path"] == "source/train.jsonl"
    assert mix["sources"][0]["cop_base"] == 0
    bad = real / settings["real"]["file"]
    bad.write_text('{"question": "ok"}\n{"no question": 1}\n')
    with pytest.raises(bench_learn.BenchError, match=r"validation_hub_copy\.jsonl:2: not a MedMCQA JSON line"):
        bench.split_real()
