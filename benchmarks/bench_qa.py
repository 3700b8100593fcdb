"""Translation QA calibrated on real translations: how often the checks reject real English->Arabic
translations, and how many synthetic corruptions of those translations they catch.

    python benchmarks/bench_qa.py [--realdata ../shared/realdata] [--out results/qa_calibration.json]

Data. With the real benchmark files present (`--realdata`, default ../shared/realdata), it reads the
English MMLU test files (mmlu_en/test/*_test.csv) and the Arabic ones made from them
(mmlu_ar/test/*_test.csv, AceGPT's machine translation), in their original headerless CSV
layout, through data_prep's `mmlu_csv` reader and converter (`read_mmlu_csv`, the one place that
parses them). A subject whose two files differ in row count is not row-parallel and is left out
(professional_medicine: 282 English rows, 272 Arabic). Rows whose Arabic question repeats with
different English questions are an off-topic filler of the Arabic files, not translations: they
are found as exact duplicate questions, their rewordings as members of the same cluster of the
audit's near-duplicate search (bimedix.dedup.clusters: Jaccard similarity of the canonical words
of question and options at least bimedix.dedup.REWORDED), and dropped. Without the real files
it runs on a small parallel sample written for this project (benchmarks/qa_sample/, synthetic, no
real row), and says so in its output.

Checks. Each pair is checked as the translation stage would check a reply, without a model
(checks.finished_translation_failures): the protected spans of the English are placeholders where
the Arabic has them verbatim, then the Arabic share, English runs, glossary, numbers, lines, markup
and the length ratio; the back-translation's chrF needs a model and is not run.

Corruptions. Each pair that passes is corrupted in five ways (where the pair allows it), one at a
time, and checked again, this time also for the placeholders that the clean translation had
(as the stage checks a reply): a dropped sentence, a changed number, a segment left in English, a
swapped option (the correct option's text exchanged with another option's), a truncated option
(the first half of its words kept). Each is detected when any check fails.

Judgements. benchmarks/qa_judgements.tsv holds a reader's verdict on every rejected real item
(`defect`: the translation is wrong where a check points and a reviewer must fix it; `fine`: a
false alarm), for the current checks and for the checks before issue 17's calibration, keyed by
the Arabic file and line; the output counts the false alarms among the rejections and lists
rejected items nobody has judged (a change to the checks that rejects new items needs new verdicts).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bimedix.dedup import clusters  # noqa: E402
from data_prep.llm.checks import Failure, StageView, finished_translation_failures, length_ratios, stage_view  # noqa: E402
from data_prep.llm.config import load_settings  # noqa: E402
from data_prep.llm.glossary import default_glossary  # noqa: E402
from data_prep.llm.notation import has_prose_letters, number_values, split_sentences  # noqa: E402
from data_prep.llm.protect import default_protector, placeholders_in  # noqa: E402

SAMPLE = ROOT / "benchmarks" / "qa_sample"
JUDGEMENTS = ROOT / "benchmarks" / "qa_judgements.tsv"
LETTERS = "ABCD"
KINDS = ("dropped_sentence", "changed_number", "left_in_english", "swapped_option", "truncated_option")
TARGETS = {"max_reject_rate": 0.09, "max_false_alarm_share": 1 / 3, "min_detection_rate": 0.95}
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Row:
    where: str  # "mmlu_ar/test/anatomy_test.csv:5", relative to the data root
    question: str
    options: tuple[str, ...]
    answer: int
    reject: str = ""  # why the format layer rejects the row (the pair is then left out)


@dataclass(frozen=True)
class Pair:
    english: Row
    arabic: Row

    @property
    def where(self) -> str:
        return self.arabic.where

    def source(self) -> dict[str, str]:
        return _segments(self.english)

    def translation(self) -> dict[str, str]:
        return _segments(self.arabic)


def _segments(row: Row) -> dict[str, str]:
    return {"question": row.question, **{f"option:{LETTERS[i]}": o for i, o in enumerate(row.options)}}


def read_mmlu_csv(path: Path, root: Path) -> list[Row]:
    """An MMLU CSV file (no header: question,A,B,C,D,answer) through the format layer's mmlu_csv reader
    and converter, as every stage reads it, row by row: the pairing needs every row, so repeated
    questions are kept here (repeated_off_topic finds them); a row the layer rejects keeps its place
    with the reason, so the rows still pair by line."""
    from bimedix import arabic, formats

    layout = formats.get_format("mmlu_csv")
    ctx = formats.Context(subject=formats.mmlu_subject(path))
    rows = []
    for line, row in formats.read_rows(path, layout):
        item = layout.convert(row, ctx, line)
        where = f"{path.relative_to(root).as_posix()}:{line}"
        if isinstance(item, formats.Reject):
            rows.append(Row(where, "", (), -1, reject=item.reason))
        else:
            # the text as the translation stage reads it (data_prep/llm/records.py normalises what it reads)
            options = tuple(arabic.normalise(o) for o in item.options)
            rows.append(Row(where, arabic.normalise(item.question), options, item.answer))
    return rows


def load_pairs(root: Path) -> tuple[list[Pair], dict]:
    """Row-parallel English/Arabic pairs of every subject, with what was read, left out and dropped."""
    info: dict = {"files": [], "not_row_parallel": {}, "dropped_repeated": [], "rejected_by_format": []}
    pairs: list[Pair] = []
    for english_file in sorted((root / "mmlu_en" / "test").glob("*_test.csv")):
        arabic_file = root / "mmlu_ar" / "test" / english_file.name
        if not arabic_file.exists():
            info["not_row_parallel"][english_file.stem] = "no Arabic file"
            continue
        english, arabic = read_mmlu_csv(english_file, root), read_mmlu_csv(arabic_file, root)
        info["files"] += [str(english_file.relative_to(root)), str(arabic_file.relative_to(root))]
        if len(english) != len(arabic):
            info["not_row_parallel"][english_file.stem] = f"{len(english)} English rows, {len(arabic)} Arabic"
            continue
        for e, a in zip(english, arabic, strict=True):
            if e.reject or a.reject:  # the format layer's reason, e.g. leaked markup
                info["rejected_by_format"] += [f"{r.where}: {r.reject}" for r in (e, a) if r.reject]
            else:
                pairs.append(Pair(e, a))
    repeated = repeated_off_topic(pairs)
    info["dropped_repeated"] = sorted(p.where for p in pairs if p.where in repeated)
    return [p for p in pairs if p.where not in repeated], info


def repeated_off_topic(pairs: list[Pair]) -> set[str]:
    """Pairs whose Arabic is a repeated filler: an Arabic question given more than once, each time
    beside a different English question, and every row reworded from those (a cluster of the audit's
    near-duplicate search, bimedix.dedup.clusters, that holds one of them)."""
    by_question: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_question[pair.arabic.question].append(pair)
    seeds = {
        pair.where
        for group in by_question.values()
        if len(group) > 1 and len({p.english.question for p in group}) > 1
        for pair in group
    }
    if not seeds:
        return set()
    out = set(seeds)
    for cluster in clusters([_text(p.arabic) for p in pairs]):
        members = {pairs[i].where for i in cluster.members}
        if members & seeds:
            out |= members
    return out


def _text(row: Row) -> str:
    return "\n".join([row.question, *row.options])


# ---------------------------------------------------------------------------------------------
# Corruptions of a translation: each returns the corrupted translation, or None where it does not apply.


def dropped_sentence(pair: Pair, rng: random.Random, view: StageView) -> dict[str, str] | None:
    translation = pair.translation()
    keys = [k for k, v in translation.items() if len(split_sentences(v, "ar")) >= 2]
    if not keys:
        return None
    key = rng.choice(keys)
    sentences = split_sentences(translation[key], "ar")
    del sentences[rng.randrange(len(sentences))]
    return translation | {key: " ".join(sentences)}


def changed_number(pair: Pair, rng: random.Random, view: StageView) -> dict[str, str] | None:
    translation = pair.translation()
    candidates = []
    for key, text in translation.items():
        values = number_values(text)
        for match in _DIGITS.finditer(text):
            if match.group(0).lstrip("0") and any(v.split(".")[0] == match.group(0).lstrip("0") for v in values):
                candidates.append((key, match))
    if not candidates:
        return None
    key, match = rng.choice(candidates)
    digits = match.group(0)
    changed = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    text = translation[key]
    return translation | {key: text[: match.start()] + changed + text[match.end() :]}


def left_in_english(pair: Pair, rng: random.Random, view: StageView) -> dict[str, str] | None:
    """A segment whose English has prose outside what the stage keeps in Latin (a segment that is
    only a dose, a drug name or an abbreviation is rightly left as it is)."""
    source, translation = pair.source(), pair.translation()
    keys = [k for k in source if has_prose_letters(view.protected[k]) and source[k].strip() != translation[k].strip()]
    if not keys:
        return None
    key = rng.choice(keys)
    return translation | {key: source[key]}


def swapped_option(pair: Pair, rng: random.Random, view: StageView) -> dict[str, str] | None:
    translation = pair.translation()
    correct = f"option:{LETTERS[pair.arabic.answer]}"
    others = [k for k in translation if k.startswith("option:") and k != correct]
    others = [k for k in others if translation[k].strip() != translation[correct].strip()]
    if not others:
        return None
    other = rng.choice(others)
    return translation | {correct: translation[other], other: translation[correct]}


def truncated_option(pair: Pair, rng: random.Random, view: StageView) -> dict[str, str] | None:
    translation = pair.translation()
    keys = [k for k, v in translation.items() if k.startswith("option:") and len(v.split()) >= 2]
    if not keys:
        return None
    key = rng.choice(keys)
    words = translation[key].split()
    return translation | {key: " ".join(words[: len(words) // 2])}


CORRUPT = {
    "dropped_sentence": dropped_sentence,
    "changed_number": changed_number,
    "left_in_english": left_in_english,
    "swapped_option": swapped_option,
    "truncated_option": truncated_option,
}


# ---------------------------------------------------------------------------------------------


VERDICTS = ("defect", "fine", "-")


def read_judgements(path: Path) -> dict[str, dict[str, str]]:
    """where -> {"now", "before", "note"} from the judgements file: where<TAB>now<TAB>before<TAB>note,
    each verdict defect, fine or - (that version of the checks did not reject the item)."""
    if not path.exists():
        return {}
    judged = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 4 or row[1] not in VERDICTS or row[2] not in VERDICTS:
                raise SystemExit(
                    f"bench-qa: {path}:{number}: expected where<TAB>now<TAB>before<TAB>note, verdicts defect|fine|-"
                )
            if row[0] in judged:
                raise SystemExit(f"bench-qa: {path}:{number}: {row[0]} is judged twice")
            judged[row[0]] = {"now": row[1], "before": row[2], "note": row[3]}
    return judged


_NUMBERISH = re.compile(r"^[<>≤≥±~]?\d")
_ABBREVIATION = re.compile(r"^[A-Za-z0-9+\-]*[A-Z][A-Za-z0-9+\-]*$")


def _span_kind(original: str) -> str:
    """What a protected span is, roughly: a number (with its unit), an abbreviation, or a term (a drug, an eponym)."""
    if _NUMBERISH.match(original):
        return "number"
    if _ABBREVIATION.match(original) and sum(c.isupper() for c in original) >= 2:
        return "abbreviation"
    if original.isalpha() or " " in original:
        return "term"
    return "other"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def run(root: Path, real: bool, seed: int) -> dict:
    settings = load_settings()
    qa = settings.translate.qa
    glossary, protector = default_glossary(), default_protector()
    pairs, info = load_pairs(root)
    if not pairs:
        raise SystemExit(f"bench-qa: no row-parallel pairs under {root}")

    def check(pair: Pair, translation: dict[str, str], expected: StageView | None = None) -> list[Failure]:
        return finished_translation_failures(pair.source(), translation, glossary, qa, protector, expected)

    rejected: Counter = Counter()
    rejections = {}
    clean: list[Pair] = []
    ratios = []
    kept: dict[str, Counter] = defaultdict(Counter)  # protected spans: found verbatim in the Arabic or not
    for pair in pairs:
        source = pair.source()
        view = stage_view(source, pair.translation(), protector)
        for key, protected in view.protected.items():
            found = placeholders_in(view.reply[key])
            for number in placeholders_in(protected):
                kind = _span_kind(view.table.originals[number])
                kept[kind]["verbatim" if number in found else "rewritten"] += 1
        for key, ratio in length_ratios(source, pair.translation()).items():
            if len(source[key]) >= qa.length_ratio_min_chars:
                ratios.append(ratio)
        failures = check(pair, pair.translation())
        if failures:
            rejected["any"] += 1
            for name in dict.fromkeys(f.check for f in failures):
                rejected[name] += 1
            rejections[pair.where] = [str(f) for f in failures]
        else:
            clean.append(pair)

    corruptions: Counter = Counter()
    detected: Counter = Counter()
    detected_by: dict[str, Counter] = {kind: Counter() for kind in KINDS}
    missed: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for pair in clean:
        expected = stage_view(pair.source(), pair.translation(), protector)
        for kind in KINDS:
            corrupted = CORRUPT[kind](pair, random.Random(f"{seed}:{pair.where}:{kind}"), expected)
            if corrupted is None:
                continue
            corruptions[kind] += 1
            failures = check(pair, corrupted, expected)
            if failures:
                detected[kind] += 1
                for name in dict.fromkeys(f.check for f in failures):
                    detected_by[kind][name] += 1
            else:
                missed[kind].append(pair.where)

    judgements = read_judgements(JUDGEMENTS)
    verdicts = Counter(
        judgements[w]["now"] if judgements.get(w, {}).get("now") in ("defect", "fine") else "not judged"
        for w in rejections
    )
    before = Counter(j["before"] for w, j in judgements.items() if j["before"] != "-" and w in {p.where for p in pairs})
    total = len(pairs)
    any_rate = rejected["any"] / total
    false_alarms = verdicts["fine"] / max(1, rejected["any"])
    detection = {kind: round(detected[kind] / corruptions[kind], 4) if corruptions[kind] else None for kind in KINDS}
    return {
        "data": "real" if real else "embedded sample (synthetic, written for this project; not real translations)",
        "data_root": str(root),
        "files": info["files"],
        "not_row_parallel": info["not_row_parallel"],
        "dropped_repeated": len(info["dropped_repeated"]),
        "rejected_by_format": info["rejected_by_format"],
        "real_pairs": total,
        "real_rejected": dict(sorted(rejected.items(), key=lambda kv: (kv[0] != "any", -kv[1]))),
        "real_reject_rate": {
            k: round(v / total, 4) for k, v in sorted(rejected.items(), key=lambda kv: (kv[0] != "any", -kv[1]))
        },
        "length_ratio": {
            "segments": len(ratios),
            "p1": percentile(ratios, 0.01),
            "p5": percentile(ratios, 0.05),
            "median": round(statistics.median(ratios), 3),
            "p99": percentile(ratios, 0.99),
            "setting": list(qa.length_ratio),
        },
        "judged": {
            "defect": verdicts["defect"],
            "fine (false alarm)": verdicts["fine"],
            "not judged": verdicts["not judged"],
            "false_alarm_share": round(false_alarms, 4),
            "before": {
                "rejected": sum(before.values()),
                "defect": before["defect"],
                "fine (false alarm)": before["fine"],
            },
        },
        "protected_spans": {kind: dict(counts) for kind, counts in sorted(kept.items())},
        "corruptions": dict(corruptions),
        "detected": dict(detected),
        "detection_rate": detection,
        "detected_by": {kind: dict(counts.most_common()) for kind, counts in detected_by.items()},
        "missed": missed,
        "targets": TARGETS,
        "met": {
            "reject_rate": any_rate <= TARGETS["max_reject_rate"],
            "false_alarm_share": verdicts["not judged"] == 0 and false_alarms <= TARGETS["max_false_alarm_share"],
            "detection": all(r is not None and r >= TARGETS["min_detection_rate"] for r in detection.values()),
        },
        "qa_settings": dataclasses.asdict(qa),
        "rejections": rejections,
        "not_judged": sorted(w for w in rejections if judgements.get(w, {}).get("now") not in ("defect", "fine")),
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "qa_calibration.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    real = (args.realdata / "mmlu_en" / "test").is_dir() and (args.realdata / "mmlu_ar" / "test").is_dir()
    root = args.realdata if real else SAMPLE
    start = time.monotonic()
    result = run(root.resolve(), real, args.seed)
    result["wall_s"] = round(time.monotonic() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"bench-qa: {result['data']}: {root}")
    print(
        f"  pairs {result['real_pairs']} (dropped {result['dropped_repeated']} repeated off-topic rows; "
        f"not row-parallel: {', '.join(result['not_row_parallel']) or 'none'}; "
        f"rejected by the format layer: {len(result['rejected_by_format'])})"
    )
    rates = result["real_reject_rate"]
    print("  rejected: " + ", ".join(f"{k} {result['real_rejected'][k]} ({rates[k]:.1%})" for k in rates))
    judged = result["judged"]
    print(
        f"  judged: {judged['defect']} defects, {judged['fine (false alarm)']} false alarms "
        f"({judged['false_alarm_share']:.1%}), {judged['not judged']} not judged"
    )
    for kind in KINDS:
        rate = result["detection_rate"][kind]
        shown = f"{rate:.1%}" if rate is not None else "n/a"
        print(f"  {kind}: detected {result['detected'].get(kind, 0)} of {result['corruptions'].get(kind, 0)} ({shown})")
    print(f"  targets met: {result['met']}; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
