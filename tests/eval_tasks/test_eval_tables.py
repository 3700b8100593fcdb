"""The paper's tables: the published rows, AVG and Bilingual arithmetic, the files written, bad results files."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from eval_tasks import registry, tables

COLUMNS = ["CKG", "CBio", "CMed", "MedGen", "ProMed", "Ana", "MedMCQA", "MedQA", "PubmedQA"]


def test_columns_are_the_papers():
    assert tables.columns() == COLUMNS == registry.references()["columns"]


@pytest.mark.parametrize(
    ("table", "row"),
    [(t, r) for t in tables.TABLES for r in registry.references()["tables"][t]],
    ids=lambda x: x if isinstance(x, str) else x["model"],
)
def test_published_avg_is_the_plain_mean_of_the_nine_columns(table, row):
    """Documents the upstream README: AVG = plain mean, rounded to one decimal, in every row but one."""
    mean = sum(row["scores"]) / 9
    if row.get("avg_mismatch"):
        # Arabic "BiMediX (Bilingual)": published 56.5, its cells average 57.34 (a misprint upstream)
        assert (table, row["model"], row["avg"], round(mean, 2)) == ("arabic", "BiMediX (Bilingual)", 56.5, 57.34)
    else:
        assert abs(mean - row["avg"]) <= 0.05 + 1e-9, (
            f"{table} {row['model']}: mean {mean:.3f} vs published {row['avg']}"
        )


def results_json(path, en: dict | None, ar: dict | None, generative=False, **meta):
    suffix = "_gen" if generative else ""
    results = {}
    for lang, scores in (("en", en), ("ar", ar)):
        for bench in registry.benchmarks():
            if scores and bench.column in scores:
                results[f"bimedix_{lang}_{bench.benchmark}{suffix}"] = {"acc,none": scores[bench.column], "alias": "x"}
    results["bimedix_bilingual"] = {"acc,none": 0.5}  # groups are ignored
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(
        json.dumps(
            {
                "results": results,
                "bimedix": {"model": "models/m", "adapter": None, "backend": "hf", "eval_data": "hub", **meta},
            }
        ),
        encoding="utf-8",
    )
    return path


def test_rows_avg_and_bilingual(tmp_path):
    en = dict(zip(COLUMNS, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], strict=True))
    ar = dict(zip(COLUMNS, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.7], strict=True))
    run = tables.load_run(results_json(tmp_path / "r", en, ar))
    assert run.label == "m [hub]"
    english, arabic, bilingual = (tables.run_row(run, t) for t in tables.TABLES)
    assert english["CKG"] == pytest.approx(90.0) and english["AVG"] == pytest.approx(50.0)
    assert arabic["PubmedQA"] == pytest.approx(70.0) and arabic["AVG"] == pytest.approx(100 * 4.3 / 9)
    assert [bilingual[c] for c in COLUMNS] == pytest.approx([50.0] * 8 + [40.0])
    assert bilingual["AVG"] == pytest.approx((english["AVG"] + arabic["AVG"]) / 2)


def test_a_run_with_one_language_leaves_the_other_tables_blank(tmp_path):
    run = tables.load_run(results_json(tmp_path / "r", {c: 0.5 for c in COLUMNS}, None))
    assert tables.run_row(run, "english")["AVG"] == pytest.approx(50.0)
    assert tables.run_row(run, "arabic")["AVG"] is None and tables.run_row(run, "bilingual")["CKG"] is None
    partial = tables.load_run(results_json(tmp_path / "p", {"CKG": 0.5}, None))
    assert tables.run_row(partial, "english")["AVG"] is None, "AVG needs all nine columns"


def test_generative_results_are_used_when_there_are_no_loglikelihood_ones(tmp_path):
    run = tables.load_run(results_json(tmp_path / "g", {c: 0.25 for c in COLUMNS}, None, generative=True))
    assert run.generative and run.label == "m [hub] (generative)"


def test_write_tables(tmp_path):
    en = {c: 0.5 for c in COLUMNS}
    runs = [
        tables.load_run(
            results_json(tmp_path / "a", en, en, limit=2, questions=36, rows_rejected=1, date="2026-01-01")
        ),
        tables.load_run(results_json(tmp_path / "b", en, None), label="second run"),
    ]
    written = tables.write_tables(runs, tmp_path / "out")
    assert [p.name for p in written] == [
        "tables.md",
        "table_english.csv",
        "table_arabic.csv",
        "table_bilingual.csv",
        "tables.png",
    ]
    frame = pd.read_csv(tmp_path / "out" / "table_bilingual.csv")
    assert list(frame.columns) == ["Model", *COLUMNS, "AVG"]
    assert list(frame["Model"]) == ["Jais-30B", "Mixtral-8x7B", "BiMediX (Bilingual)", "m [hub]", "second run"]
    assert frame["AVG"].iloc[3] == 50.0 and pd.isna(frame["AVG"].iloc[4])
    md = (tmp_path / "out" / "tables.md").read_text(encoding="utf-8")
    assert md.count("| Model ") == 3 and re.search(r"^\| BiMediX \(Bilingual\) +\| +70\.6 \|", md, re.MULTILINE)
    assert "limit 2 per task, 36 questions, 1 rows not scored (listed in results.json), 2026-01-01" in md
    assert (tmp_path / "out" / "tables.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_results_files(tmp_path):
    with pytest.raises(tables.TablesError, match=r"results\.json: not found"):
        tables.load_run(tmp_path)
    (tmp_path / "results.json").write_text("{", encoding="utf-8")
    with pytest.raises(tables.TablesError, match=r"results\.json:1: invalid JSON"):
        tables.load_run(tmp_path)
    (tmp_path / "results.json").write_text(
        json.dumps({"results": {"mmlu_anatomy": {"acc,none": 0.3}}}), encoding="utf-8"
    )
    with pytest.raises(tables.TablesError, match="holds no bimedix_\\* task scores"):
        tables.load_run(tmp_path)


def test_the_tables_command_tells_runs_of_one_model_apart(tmp_path):
    from eval_tasks import cli

    scores = {c: 0.5 for c in COLUMNS}
    runs = [str(results_json(tmp_path / name, scores, scores)) for name in ("first", "second")]
    assert cli.main(["tables", *runs, "--out", str(tmp_path / "out")]) == 0
    frame = pd.read_csv(tmp_path / "out" / "table_arabic.csv")
    assert list(frame["Model"])[-2:] == ["m [hub] (first)", "m [hub] (second)"]
    assert cli.main(["tables", str(tmp_path / "missing")]) == 2


def test_missing_cells_are_dashes_and_draw_no_bar(tmp_path, monkeypatch):
    """A run without Arabic: `–` in Markdown (never 'nan'), empty in CSV, and no bar in the PNG."""
    run = tables.load_run(results_json(tmp_path / "r", {c: 0.5 for c in COLUMNS}, None))
    drawn = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.bar

    def spy(self, x, height, *args, **kwargs):
        drawn.append((self, kwargs.get("label"), list(height)))
        return original(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    tables.write_tables([run], tmp_path / "out")
    md = (tmp_path / "out" / "tables.md").read_text(encoding="utf-8")
    assert "nan" not in md
    arabic_row = next(line for line in md.splitlines() if line.startswith("| m [hub]") and "–" in line)
    assert arabic_row.count("–") == 11  # nine columns, AVG and MedArabiQ
    heights = {(ax.get_title(), label): h for ax, label, h in drawn}
    assert heights[("Arabic Benchmark", "m [hub]")] == [] and len(heights[("English Benchmark", "m [hub]")]) == 10
    assert all(h == h for values in heights.values() for h in values), "no NaN bar either"


def test_medarabiq_is_a_column_beside_the_arabic_table_outside_avg(tmp_path):
    ar = {c: 0.5 for c in COLUMNS} | {"MedArabiQ": 0.9}
    run = tables.load_run(results_json(tmp_path / "r", None, ar))
    row = tables.run_row(run, "arabic")
    assert row["MedArabiQ"] == pytest.approx(90.0) and row["AVG"] == pytest.approx(50.0)
    assert tables.all_columns("arabic")[-2:] == ["AVG", "MedArabiQ"]
    assert "MedArabiQ" not in tables.all_columns("english") + tables.all_columns("bilingual")
    tables.write_tables([run], tmp_path / "out")
    frame = pd.read_csv(tmp_path / "out" / "table_arabic.csv")
    assert list(frame.columns)[-2:] == ["AVG", "MedArabiQ"] and frame["MedArabiQ"].isna().sum() == 3


def test_the_sample_caveat_and_labels_follow_the_data_source(tmp_path):
    scores = {c: 0.5 for c in COLUMNS}
    hub = tables.load_run(results_json(tmp_path / "h", scores, scores))
    local = tables.load_run(results_json(tmp_path / "l", scores, scores, eval_data="/data/realdata/index.yaml"))
    sample = tables.load_run(results_json(tmp_path / "s", scores, scores, eval_data="sample"))
    assert (hub.label, local.label, sample.label) == ("m [hub]", "m [realdata]", "m [sample data]")
    tables.write_tables([hub, local], tmp_path / "real")
    assert "SAMPLE" not in (tmp_path / "real" / "tables.md").read_text(encoding="utf-8")
    tables.write_tables([hub, sample], tmp_path / "mixed")
    md = (tmp_path / "mixed" / "tables.md").read_text(encoding="utf-8")
    assert "m [sample data]: the embedded SAMPLE data (6 synthetic questions per task), a smoke test" in md


def test_the_run_note_carries_the_audit_counts(tmp_path):
    scores = {c: 0.5 for c in COLUMNS}
    audit = {"duplicate": 13, "repeated_question": 7}
    run = tables.load_run(results_json(tmp_path / "r", scores, scores, audit=audit, rows_rejected=13))
    tables.write_tables([run], tmp_path / "out")
    md = (tmp_path / "out" / "tables.md").read_text(encoding="utf-8")
    assert "13 rows not scored (listed in results.json); audit (rows): duplicate 13, repeated_question 7" in md
