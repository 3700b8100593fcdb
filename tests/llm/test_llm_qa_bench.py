"""`make bench-qa` (benchmarks/bench_qa.py) on the embedded parallel sample, and the pieces it relies on:
the MMLU CSV pairs, the repeated off-topic rows, the judgements file, the sentence check.

Never reads ../shared/realdata: the sample (benchmarks/qa_sample/) is synthetic, written for this project.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from bimedix.paths import ROOT
from data_prep.llm.checks import finished_translation_failures, stage_view, structural_failures
from data_prep.llm.config import ConfigError, load_settings
from data_prep.llm.glossary import Glossary, default_glossary
from data_prep.llm.notation import Numerals, split_sentences
from data_prep.llm.protect import Protected, default_protector

QA = load_settings().translate.qa


def bench():
    spec = importlib.util.spec_from_file_location("bench_qa", ROOT / "benchmarks" / "bench_qa.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_qa_runs_on_the_embedded_sample_without_the_real_files(tmp_path):
    out = tmp_path / "qa.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_qa.py", "--realdata", str(tmp_path / "absent"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["data"].startswith("embedded sample (synthetic")
    assert "embedded sample" in done.stdout
    assert result["files"] == ["mmlu_en/test/qa_sample_test.csv", "mmlu_ar/test/qa_sample_test.csv"]
    assert (result["real_pairs"], result["dropped_repeated"]) == (24, 3)
    assert result["real_rejected"] == {
        "any": 5,
        "numbers": 3,
        "glossary": 1,
        "sentences": 1,
        "length_ratio": 1,
        "arabic_share": 1,
        "markup": 1,
    }
    # every defect written into the sample is rejected, and judged so; none of its false-alarm rows is
    assert result["judged"] | {"before": None} == {
        "defect": 5,
        "fine (false alarm)": 0,
        "not judged": 0,
        "false_alarm_share": 0.0,
        "before": None,
    }
    assert set(result["corruptions"]) == set(result["detection_rate"]) == set(bench().KINDS)
    assert result["detected"]["changed_number"] == result["corruptions"]["changed_number"] > 0
    assert result["detected"]["left_in_english"] == result["corruptions"]["left_in_english"] > 0
    assert result["length_ratio"]["setting"] == [0.4, 2.0]


def test_repeated_off_topic_arabic_rows_are_dropped_and_parallel_repeats_kept():
    b = bench()

    def pair(line, english, arabic, options=("أ", "ب", "ج", "د")):
        return b.Pair(b.Row(f"en:{line}", english, ("a", "b", "c", "d"), 0), b.Row(f"ar:{line}", arabic, options, 0))

    filler = ("استخدام كلمة طويلة", "تغييرها كل يوم", "كتابتها على ورقة", "مشاركتها مع الزملاء")
    pairs = [
        pair(1, "Which nerve is damaged in wrist drop?", "كيف تحمي كلمة المرور؟", filler),
        pair(2, "Which organ produces bile?", "كيف تحمي كلمة المرور؟", filler),
        pair(3, "Which bone is the longest?", "كيف يمكن حماية كلمة المرور؟", filler),  # a rewording
        pair(4, "Which of the following is false?", "أي مما يلي خطأ؟"),  # repeated in both languages: real items
        pair(5, "Which of the following is false?", "أي مما يلي خطأ؟"),
        pair(6, "Which organ produces insulin?", "أي عضو ينتج الإنسولين؟"),
    ]
    assert b.repeated_off_topic(pairs) == {"ar:1", "ar:2", "ar:3"}


def test_a_row_the_format_layer_rejects_is_left_out_by_file_and_line(tmp_path):
    for language, broken in (("en", "Q2?,a,b,c,d,B\n"), ("ar", "only,three,cells\n")):
        path = tmp_path / f"mmlu_{language}" / "test" / "x_test.csv"
        path.parent.mkdir(parents=True)
        path.write_text("Q?,a,b,c,d,A\n" + broken, encoding="utf-8")
    rows = bench().read_mmlu_csv(tmp_path / "mmlu_ar" / "test" / "x_test.csv", tmp_path)
    assert [r.where for r in rows] == ["mmlu_ar/test/x_test.csv:1", "mmlu_ar/test/x_test.csv:2"]
    assert not rows[0].reject and "expected 6 columns" in rows[1].reject
    pairs, info = bench().load_pairs(tmp_path)
    assert [p.where for p in pairs] == ["mmlu_ar/test/x_test.csv:1"]
    assert len(info["rejected_by_format"]) == 1 and info["rejected_by_format"][0].startswith(
        "mmlu_ar/test/x_test.csv:2: "
    )


def test_the_shipped_judgements_parse_and_reference_items_by_file_and_line(tmp_path):
    b = bench()
    judged = b.read_judgements(b.JUDGEMENTS)
    assert len(judged) > 100
    for where, verdict in judged.items():
        assert where.startswith("mmlu_ar/test/") and where.rsplit(":", 1)[1].isdigit()
        assert "-" in (verdict["now"], verdict["before"]) or verdict["now"] in ("defect", "fine")
    bad = tmp_path / "j.tsv"
    bad.write_text("# comment\nmmlu_ar/test/a_test.csv:3\tmaybe\t-\tnote\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"j\.tsv:2: expected where<TAB>now<TAB>before<TAB>note"):
        b.read_judgements(bad)


# ---------------------------------------------------------------------------------------------
# The sentence check: a dropped sentence is caught, sentences merged at full length are not.

VIGNETTE = "A 30-year-old woman has a fever and a stiff neck. Kernig's sign is positive. What is the diagnosis?"


def sentence_failures(arabic: str) -> list[str]:
    source = {"question": VIGNETTE}
    table = Protected()
    protected = {k: default_protector().protect(v, table) for k, v in source.items()}
    reply = {"question": arabic.replace("30", "⟦1⟧")}
    failures = structural_failures(source, protected, reply, table, default_glossary(), QA)
    return [str(f) for f in failures if f.check == "sentences"]


def test_a_dropped_sentence_is_caught():
    dropped = "امرأة عمرها 30 عامًا لديها حمى وتيبس الرقبة. ما التشخيص؟"
    assert sentence_failures(dropped) == [
        f"question: 2 sentence(s) where the source has 3, and {len(dropped) / len(VIGNETTE):.2f} times its length; "
        "a sentence seems dropped: translate every sentence"
    ]


def test_sentences_merged_at_full_length_pass():
    merged = "ما التشخيص لدى امرأة عمرها 30 عامًا لديها حمى وتيبس الرقبة وعلامة كيرنيغ إيجابية لديها؟"
    assert len(merged) / len(VIGNETTE) > QA.dropped_sentence_ratio
    assert sentence_failures(merged) == []


@pytest.mark.parametrize(
    ("text", "language", "count"),
    [
        ("A patient has a rash. Which sign? The end", "en", 3),
        ("Vitamin K. Which factor?", "en", 1),  # a capital initial is no sentence end
        ("Give 6.5 mmol/L, e.g. by mouth. Then wait.", "en", 2),
        ("ما هو الفرقة Hfr من E. coli تحتوي على:", "ar", 1),  # a Latin initial is no sentence end
        (". . . الانسداد الرئوي المزمن (COPD).", "ar", 1),  # dots alone are no sentence
        ("جملة أولى. جملة ثانية؟ ثالثة", "ar", 3),
    ],
)
def test_sentences_are_counted_as_a_reader_would(text, language, count):
    assert len(split_sentences(text, language)) == count


def test_a_finished_translation_is_checked_as_the_stage_would_see_it():
    source = {"question": "A 45-year-old man takes metformin 500 mg twice a day.", "option:A": "Lactic acidosis"}
    translation = {"question": "رجل عمره 45 عامًا يتناول الميتفورمين 500 mg مرتين يوميًا.", "option:A": "الحماض اللبني"}
    assert finished_translation_failures(source, translation, default_glossary(), QA, default_protector()) == []
    view = stage_view(source, translation, default_protector())
    assert view.reply["question"] == "رجل عمره ⟦1⟧ عامًا يتناول الميتفورمين ⟦3⟧ مرتين يوميًا."  # metformin transliterated
    swapped = translation | {"question": translation["question"].replace("500 mg", "50 mg")}
    failures = finished_translation_failures(source, swapped, default_glossary(), QA, default_protector(), view)
    assert [f.check for f in failures] == ["placeholders", "numbers"]


# ---------------------------------------------------------------------------------------------
# Bad settings files are one line naming the file and the line or key.


def test_a_bad_numerals_file_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("english: {1: [one]}\narabic: {1: [واحد], 2: [واحد]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"n\.yaml: arabic: 'واحد' is listed for 1 and 2"):
        Numerals.from_file(path)
    path.write_text("english: {1: [one]}\narabic: {1: [واحد]}\nwords: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"n\.yaml: unknown key 'words'"):
        Numerals.from_file(path)


def test_a_glossary_sense_line_needs_a_dash_or_a_form(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("stroke\tالسكتة الدماغية\npower stroke\t-\n", encoding="utf-8")
    glossary = Glossary.from_file(path)
    assert glossary.missing("the power stroke", "لا شيء") == []
    path.write_text("stroke\t|\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"g\.tsv:1: empty Arabic form \(write - for a sense not checked\)"):
        Glossary.from_file(path)
