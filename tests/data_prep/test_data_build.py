"""The build: golden counts on the embedded samples, the accounting, the output schema (loaded
with `datasets`, as Axolotl does), determinism, decontamination, rejects and the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import datasets
import jinja2.ext  # noqa: F401  (bimedix.chat.render needs it imported; see data_prep/README.md)
import pytest

from bimedix.chat import render
from bimedix.paths import ROOT
from data_prep.build import build_variant
from data_prep.config import load_mix, load_settings
from data_prep.records import OUTPUT_KEYS, DataPrepError

MIXES = ROOT / "data_prep" / "mixes"
SAMPLES = ROOT / "data_prep" / "samples"
EVAL_INDEX = ROOT / "tests" / "data_prep" / "fixtures" / "eval" / "index.yaml"

# (read, written, rejected, exact duplicates, near duplicates, decontaminated, sampled out) per source
GOLDEN = {
    "bilingual": {
        "medqa_en": (18, 15, 0, 1, 1, 1, 0),  # line 7 repeats line 2, line 13 edits line 1, line 4 is an eval item
        "medmcqa_en": (16, 15, 0, 0, 0, 1, 0),  # the Koplik spots question is an eval item
        "pubmedqa_en": (8, 8, 0, 0, 0, 0, 0),
        "pubmedqa_unlabelled_en": (3, 3, 0, 0, 0, 0, 0),
        "mmlu_en": (14, 14, 0, 0, 0, 0, 0),
        "mcq_en": (12, 12, 0, 0, 0, 0, 0),
        "qa_en": (14, 14, 0, 0, 0, 0, 0),
        "chat_en": (10, 10, 0, 0, 0, 0, 0),
        "medqa_ar": (8, 8, 0, 0, 0, 0, 0),
        "medmcqa_ar": (8, 8, 0, 0, 0, 0, 0),
        "pubmedqa_ar": (4, 3, 0, 0, 0, 0, 1),  # Arabic is subsampled to 1:2
        "mmlu_ar": (8, 7, 0, 0, 0, 1, 0),  # the eval copy adds diacritics and a tatweel
        "mcq_ar": (8, 6, 0, 0, 0, 0, 2),
        "qa_ar": (8, 8, 0, 0, 0, 0, 0),
        "chat_ar": (6, 5, 0, 0, 0, 0, 1),
    },
    "arabic": {
        "medqa_ar": (8, 8, 0, 0, 0, 0, 0),
        "medmcqa_ar": (8, 8, 0, 0, 0, 0, 0),
        "pubmedqa_ar": (4, 4, 0, 0, 0, 0, 0),
        "mmlu_ar": (8, 7, 0, 0, 0, 1, 0),
        "mcq_ar": (8, 8, 0, 0, 0, 0, 0),
        "qa_ar": (8, 8, 0, 0, 0, 0, 0),
        "chat_ar": (6, 6, 0, 0, 0, 0, 0),
    },
}
TEXT = datasets.Value("string")
SCHEMA = datasets.Features(
    {
        **{key: TEXT for key in ("id", "source", "format", "language", "task", "split")},
        "messages": datasets.List({"role": TEXT, "content": TEXT}),
        "metadata": TEXT,
        "provenance": {"file": TEXT, "line": datasets.Value("int64")},
    }
)
COLUMNS = ("read", "written", "rejected", "duplicates_exact", "duplicates_near", "decontaminated", "sampled_out")


def lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("variant", sorted(GOLDEN))
def test_golden_counts_per_source(built, variant):
    table = {row["source"]: tuple(row[c] for c in COLUMNS) for row in built[variant].table}
    assert table == GOLDEN[variant]


def test_english_variant_is_the_english_part_without_subsampling(built):
    english = {row["source"]: tuple(row[c] for c in COLUMNS) for row in built["english"].table}
    assert english == {k: v for k, v in GOLDEN["bilingual"].items() if k.endswith("_en")}


@pytest.mark.parametrize("variant", ["bilingual", "arabic", "english"])
def test_every_row_is_accounted_for(built, variant):
    result = built[variant]
    for row in result.table:
        assert (
            row["read"]
            == row["written"] + row["rejected"] + row["deduplicated"] + row["decontaminated"] + row["sampled_out"]
        )
    train, val = lines(result.directory / "train.jsonl"), lines(result.directory / "val.jsonl")
    manifest = json.loads((result.directory / "manifest.json").read_text())
    assert len(train) == manifest["outputs"]["train.jsonl"]["rows"] == sum(r["train_lines"] for r in result.table)
    assert len(val) == manifest["outputs"]["val.jsonl"]["rows"] == sum(r["val"] for r in result.table)
    by_source = Counter(row["source"] for row in train + val)
    assert by_source == Counter({r["source"]: r["written"] for r in result.table if r["written"]})
    provenance = {(row["provenance"]["file"], row["provenance"]["line"]) for row in train + val}
    assert len(provenance) == len(train) + len(val)  # no record written twice (weights are 1)


def test_bilingual_ratio_is_one_arabic_to_two_english(built):
    manifest = built["bilingual"].manifest
    records = manifest["ratio"]["records"]
    assert (records["ar"], records["en"]) == (45, 91)  # 49 Arabic left after filtering: floor(91 / 2) = 45
    assert manifest["language_targets"] == {"ar": 45, "en": 91}
    assert records["as_ar_to_en"] == "1:2.02"
    tokens = manifest["ratio"]["tokens"]
    assert tokens["ar"] + tokens["en"] == manifest["tokens"]["total"]


@pytest.mark.parametrize("variant", ["bilingual", "arabic", "english"])
def test_output_has_one_schema_that_datasets_loads(built, variant):
    directory = built[variant].directory
    for split in ("train", "val"):
        rows = lines(directory / f"{split}.jsonl")
        for row in rows:
            assert tuple(row) == OUTPUT_KEYS
            assert isinstance(row["metadata"], str) and isinstance(json.loads(row["metadata"]), dict)
            assert set(row["provenance"]) == {"file", "line"} and isinstance(row["provenance"]["line"], int)
            assert row["split"] == split
            roles = [m["role"] for m in row["messages"]]
            assert roles[-1] == "assistant" and all(set(m) == {"role", "content"} for m in row["messages"])
            assert render(row["messages"]).startswith("<s>[INST] ")
        loaded = datasets.load_dataset("json", data_files=str(directory / f"{split}.jsonl"), split="train")
        assert len(loaded) == len(rows)
        assert loaded.features == SCHEMA


def test_normalisation_reaches_the_output(built):
    train = (built["arabic"].directory / "train.jsonl").read_text(encoding="utf-8")
    val = (built["arabic"].directory / "val.jsonl").read_text(encoding="utf-8")
    text = train + val
    for mark in ("\u0640", "\u200f", "٥٢٠", "٧٫١٠"):
        assert mark not in text
    assert "سكر الدم 520 ملغ/دل" in text and "7.10" in text
    assert "تيبّس" in text  # diacritics (shadda) kept


def test_decontamination_drops_the_planted_items_only(built, eval_index):
    bilingual = built["bilingual"]
    decontamination = bilingual.manifest["filters"]["decontamination"]
    assert decontamination["dropped_by_eval_task"] == {
        "bimedix_ar_mmlu_anatomy": 1,
        "bimedix_en_medmcqa": 1,
        "bimedix_en_medqa": 1,
    }
    assert [(e["task"], e["scored"]) for e in decontamination["files"]] == [
        ("bimedix_en_medmcqa", 2),
        ("bimedix_en_medqa", 3),
        ("bimedix_ar_mmlu_anatomy", 2),
    ]
    assert decontamination["eval_data"].endswith("fixtures/eval/index.yaml") and len(decontamination["sha256"]) == 64
    written = {(r["provenance"]["file"], r["provenance"]["line"]) for r in lines(bilingual.directory / "train.jsonl")}
    written |= {(r["provenance"]["file"], r["provenance"]["line"]) for r in lines(bilingual.directory / "val.jsonl")}
    assert ("data_prep/samples/medqa_en.jsonl", 4) not in written  # isoniazid, repeated in the eval set
    assert ("data_prep/samples/medmcqa_en.jsonl", 7) not in written  # Koplik spots (a 9-word eval item)
    assert ("data_prep/samples/mmlu_ar/anatomy_train.csv", 1) not in written  # with diacritics added in eval
    assert ("data_prep/samples/medqa_en.jsonl", 1) in written  # only shares an opening with an eval item


def test_min_coverage_zero_drops_any_shared_ngram(tmp_path, tokenizer, eval_index):
    settings = load_settings()
    strict = type(settings)(**{**settings.__dict__, "decontamination": type(settings.decontamination)(13, 0.0)})
    result = build_variant(
        load_mix(MIXES / "english.yaml"),
        strict,
        out_dir=tmp_path,
        tokenizer=tokenizer,
        eval_index=eval_index,
        workers=1,
    )
    medqa = next(row for row in result.table if row["source"] == "medqa_en")
    # now also line 1, which shares its opening 14 words with an eval item, and line 13 (its near
    # duplicate, which decontamination claims first: it comes before deduplication)
    assert (medqa["decontaminated"], medqa["duplicates_near"]) == (3, 0)


def test_serial_and_parallel_builds_are_byte_identical(built, tmp_path, tokenizer, eval_index):
    again = build_variant(
        load_mix(MIXES / "bilingual.yaml"),
        load_settings(),
        out_dir=tmp_path,
        tokenizer=tokenizer,
        eval_index=eval_index,
        workers=1,
    )
    first = built["bilingual"].directory
    for name in ("train.jsonl", "val.jsonl", "rejects.jsonl", "lengths.png"):
        assert (again.directory / name).read_bytes() == (first / name).read_bytes(), name
    one, two = (json.loads((d / "manifest.json").read_text()) for d in (first, again.directory))
    one.pop("output_dir"), two.pop("output_dir")
    assert one == two


def test_token_counts_match_the_tokenizer_on_the_rendered_template(built, tokenizer):
    from data_prep.tokens import render as fast_render

    rows = lines(built["arabic"].directory / "train.jsonl") + lines(built["arabic"].directory / "val.jsonl")
    assert all(fast_render(r["messages"]) == render(r["messages"]) for r in rows)
    counted = int(tokenizer.count([render(r["messages"]) for r in rows]).sum())
    assert counted == built["arabic"].manifest["tokens"]["total"]
    png = built["arabic"].directory / "lengths.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (built["arabic"].directory / "README.md").read_text(encoding="utf-8")
    assert f"total: {counted:,}" in card and "Not for clinical use" in card


def test_weights_subsample_and_repeat(tmp_path, tokenizer):
    mix = tmp_path / "weights.yaml"
    mix.write_text(
        f"name: weights\nseed: 3\nval_fraction: 0\nsources:\n"
        f"  - {{name: qa, format: qa_jsonl, path: {SAMPLES / 'qa_en.jsonl'}, weight: 0.5}}\n"
        f"  - {{name: chat, format: chat_jsonl, path: {SAMPLES / 'chat_en.jsonl'}, weight: 2.5}}\n"
    )
    result = build_variant(
        load_mix(mix), load_settings(), out_dir=tmp_path, tokenizer=tokenizer, eval_index=None, workers=1
    )
    qa, chat = result.table
    assert (qa["written"], qa["sampled_out"], qa["train_lines"]) == (7, 7, 7)
    assert (chat["written"], chat["sampled_out"], chat["train_lines"]) == (10, 0, 25)  # 2 copies each, 5 get a third
    assert len(lines(result.directory / "train.jsonl")) == 32
    assert result.manifest["filters"]["decontamination"] == {"enabled": False, "reason": "--no-decontaminate"}


def test_bad_rows_go_to_rejects_with_file_line_and_reason(tmp_path, tokenizer):
    result = build_variant(
        load_mix(SAMPLES / "bad" / "mix.yaml"),
        load_settings(),
        out_dir=tmp_path,
        tokenizer=tokenizer,
        eval_index=None,
        workers=2,
    )
    rejects = lines(result.directory / "rejects.jsonl")
    got = [(r["file"].rsplit("/", 1)[-1], r["line"], r["code"]) for r in rejects]
    assert got == [
        ("medqa_bad.jsonl", 2, "invalid_json"),
        ("medqa_bad.jsonl", 3, "missing_field"),
        ("medqa_bad.jsonl", 4, "answer_not_in_options"),
        ("medqa_bad.jsonl", 5, "empty_field"),
        ("medqa_bad.jsonl", 6, "undecodable"),
        ("medqa_bad.jsonl", 7, "answer_mismatch"),
        ("medqa_bad.jsonl", 9, "missing_field"),  # line 8 is blank: not a row
        ("mmlu_bad.csv", 2, "column_count"),
        ("mmlu_bad.csv", 3, "answer_not_in_options"),
        ("mmlu_bad.csv", 4, "undecodable"),
        ("mmlu_bad.csv", 5, "empty_field"),
        ("mcq_bad.json", 9, "bad_options"),
        ("mcq_bad.json", 15, "answer_not_in_options"),
        ("mcq_bad.json", 21, "missing_field"),
        ("mcq_bad.json", 26, "not_an_object"),
        ("chat_bad.jsonl", 2, "bad_messages"),
        ("chat_bad.jsonl", 3, "bad_messages"),
        ("chat_bad.jsonl", 4, "empty_field"),
        ("chat_bad.jsonl", 5, "missing_field"),
        ("pubmedqa_bad.json", 21, "answer_not_in_options"),
        ("pubmedqa_bad.json", 40, "missing_field"),
        ("pubmedqa_bad.json", 45, "missing_field"),
        ("medmcqa_bad.jsonl", 3, "answer_not_in_options"),
        ("medmcqa_bad.jsonl", 4, "missing_field"),
        ("medmcqa_bad.jsonl", 5, "missing_field"),
        ("medmcqa_bad.jsonl", 6, "language_mismatch"),
    ]
    assert all(r["reason"] and "\n" not in r["reason"] for r in rejects)
    assert sum(r["rejected"] for r in result.table) == 26 and sum(r["written"] for r in result.table) == 7
    assert result.manifest["sources"][0]["counts"]["reject_codes"]["missing_field"] == 2


def test_strict_stops_at_the_first_reject_and_publishes_nothing(tmp_path, tokenizer):
    with pytest.raises(DataPrepError, match=r"^data_prep/samples/bad/medqa_bad\.jsonl:2: invalid JSON .*--strict"):
        build_variant(
            load_mix(SAMPLES / "bad" / "mix.yaml"),
            load_settings(),
            out_dir=tmp_path,
            tokenizer=tokenizer,
            eval_index=None,
            strict=True,
            workers=2,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_failed_build_keeps_the_previous_output(tmp_path, tokenizer):
    mix = tmp_path / "m.yaml"
    data = tmp_path / "qa.jsonl"
    data.write_text((SAMPLES / "qa_en.jsonl").read_text())
    mix.write_text(f"name: keep\nsources:\n  - {{name: qa, format: qa_jsonl, path: {data}}}\n")
    first = build_variant(
        load_mix(mix), load_settings(), out_dir=tmp_path / "out", tokenizer=tokenizer, eval_index=None, workers=1
    )
    before = (first.directory / "train.jsonl").read_bytes()
    data.write_text('{"question": "q?", "answer": "a"}\nnot json\n')
    with pytest.raises(DataPrepError):
        build_variant(
            load_mix(mix),
            load_settings(),
            out_dir=tmp_path / "out",
            tokenizer=tokenizer,
            eval_index=None,
            strict=True,
            workers=1,
        )
    assert (first.directory / "train.jsonl").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep"]


def run_cli(*args, env=None):
    import os

    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "data_prep", *args], cwd=ROOT, capture_output=True, text=True, env=environment
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--eval-data", "nowhere/index.yaml"],
            "nowhere/index.yaml: no such folder or index file .* --no-decontaminate",
        ),
        (["--mix", "data_prep/samples/bad/medmcqa_ambiguous.jsonl"], "invalid YAML|expected a mapping"),
        (
            ["--no-decontaminate", "--mix", "data_prep/samples/bad/mix.yaml", "--strict"],
            r"medqa_bad\.jsonl:2: invalid JSON",
        ),
    ],
)
def test_cli_errors_are_one_line_with_status_2(tmp_path, args, message):
    result = run_cli("build", "--out", str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    import re

    assert re.search(message, errors[0]), errors[0]


def test_cli_decontaminates_against_eval_data_the_setting_the_env_or_the_flag(tmp_path):
    default = run_cli(
        "build", "--out", str(tmp_path), "--mix", "data_prep/mixes/arabic.yaml", env={"BIMEDIX_EVAL_DATA": ""}
    )
    assert default.returncode == 0, default.stderr
    assert "decontaminating against the 114 items EVAL_DATA=sample scores" in default.stderr
    ok = run_cli(
        "build",
        "--out",
        str(tmp_path),
        "--mix",
        "data_prep/mixes/arabic.yaml",
        env={"BIMEDIX_EVAL_DATA": str(EVAL_INDEX)},
    )
    assert ok.returncode == 0, ok.stderr
    assert "decontaminating against the 7 items" in ok.stderr
    manifest = json.loads((tmp_path / "arabic" / "manifest.json").read_text())
    assert manifest["filters"]["decontamination"]["items"] == 7
    flag = run_cli(
        "build", "--out", str(tmp_path), "--mix", "data_prep/mixes/arabic.yaml", "--eval-data", "sample",
        env={"BIMEDIX_EVAL_DATA": str(EVAL_INDEX)},
    )  # fmt: skip
    assert "the 114 items EVAL_DATA=sample scores" in flag.stderr, flag.stderr


def test_cli_convert_accounts_for_every_row(tmp_path):
    result = run_cli(
        "convert",
        "--format",
        "medqa",
        "data_prep/samples/bad/medqa_bad.jsonl",
        "--out",
        str(tmp_path / "r.jsonl"),
        "--rejects",
        str(tmp_path / "x.jsonl"),
    )
    assert result.returncode == 2  # 7 of 8 rows rejected: above the limit
    assert "read 8, written 1" in result.stdout and "rejected 7" in result.stdout
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 7
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1
    assert "7 of 8 rows rejected (87.5%, above the limit 10%)" in result.stderr
    allowed = run_cli("convert", "--format", "medqa", "data_prep/samples/bad/medqa_bad.jsonl", "--max-rejected", "0.9")
    assert allowed.returncode == 0, allowed.stderr


def test_the_eval_stage_sample_is_what_make_data_decontaminates_against():
    from data_prep.decontam import load_eval_index

    index = load_eval_index("sample")
    assert len(index.files) == 19 and all(e["scored"] > 0 and e["rejected"] == 0 for e in index.files)
    assert {e["task"] for e in index.files} >= {"bimedix_en_medmcqa", "bimedix_ar_pubmedqa", "bimedix_ar_medarabiq"}
    assert len(index.tasks) == 114 and index.source == "sample"
