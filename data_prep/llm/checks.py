"""Checks of one translated item, and its automatic QA scores. Pure functions: text in, failures out.

Every failure is one sentence that names the segment and what is wrong, because the same
sentence goes back into the re-translation prompt and into the reviewer's `reason` column.

Structural checks (on the reply, before any back-translation):
- the reply has exactly the item's segments (so an MCQ keeps its number of options);
- each segment holds exactly its own placeholders, once each (numbers, doses, units, lab values,
  drug names, abbreviations and markdown survive);
- at least `min_arabic_ratio` of the letters are Arabic (placeholders excluded);
- no run of `max_english_run_words` or more Latin words outside placeholders;
- every glossary term of the source appears in one of its Arabic forms;
- after restoring placeholders, the same numbers as the source (Arabic-Indic digits = ASCII ones);
- the same number of lines as the source segment (markdown lists and paragraphs keep their shape).
QA (on the back-translation): chrF of the back-translation against the source (sacrebleu chrF2,
lower-cased, over all segments of the item) >= min_chrf, and the Arabic/English length ratio of
each segment of at least `length_ratio_min_chars` characters inside `length_ratio`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sacrebleu.metrics import CHRF

from data_prep.llm.config import QASettings
from data_prep.llm.glossary import Glossary
from data_prep.llm.protect import PLACEHOLDER, Protected, placeholders_in, restore
from data_prep.llm.text import arabic_ratio, latin_runs, numbers

_SEGMENT = re.compile(r'<seg id="([^"]+)">(.*?)</seg>', re.DOTALL)
_CHRF = CHRF()


def format_segments(segments: dict[str, str]) -> str:
    return "\n".join(f'<seg id="{key}">{text}</seg>' for key, text in segments.items())


def parse_segments(reply: str) -> tuple[dict[str, str], list[str]]:
    """The <seg> blocks of a reply, and problems with them (a repeated id)."""
    found: dict[str, str] = {}
    problems = []
    for key, text in _SEGMENT.findall(reply):
        if key in found:
            problems.append(f"segment {key} appears twice in the reply")
        found[key] = text.strip()
    return found, problems


def segment_failures(expected: list[str], found: dict[str, str], problems: list[str]) -> list[str]:
    failures = list(problems)
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    if not found:
        failures.append(f"the reply has no <seg> blocks; expected {len(expected)}: {', '.join(expected)}")
        return failures
    if missing:
        failures.append(f"segments missing from the reply: {', '.join(missing)} (expected {len(expected)} blocks)")
    if extra:
        failures.append(f"segments that do not exist in the source: {', '.join(extra)}")
    return failures


def _letters_only(text: str) -> str:
    return PLACEHOLDER.sub(" | ", text)


def structural_failures(
    source: dict[str, str],
    protected_source: dict[str, str],
    reply: dict[str, str],
    table: Protected,
    glossary: Glossary,
    qa: QASettings,
) -> list[str]:
    failures = []
    for key, protected in protected_source.items():
        if key not in reply:
            continue
        out = reply[key]
        want = placeholders_in(protected)
        got = placeholders_in(out)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        repeated = sorted(n for n in got if n in want and got[n] > want[n])
        if missing:
            shown = ", ".join(f"⟦{n}⟧ ({table.originals[n]})" for n in missing)
            failures.append(f"{key}: placeholders missing: {shown}; copy each exactly once")
        if extra:
            failures.append(
                f"{key}: placeholders that belong elsewhere or do not exist: {', '.join(f'⟦{n}⟧' for n in extra)}"
            )
        if repeated:
            failures.append(f"{key}: placeholders repeated: {', '.join(f'⟦{n}⟧' for n in repeated)}")
        plain = _letters_only(out)
        ratio = arabic_ratio(plain)
        if ratio < qa.min_arabic_ratio:
            failures.append(
                f"{key}: only {ratio:.0%} of the letters are Arabic (at least {qa.min_arabic_ratio:.0%} needed)"
            )
        for run in latin_runs(plain, qa.max_english_run_words):
            failures.append(f"{key}: untranslated English left: {run.strip()!r}")
        if qa.check_glossary:
            for term in glossary.missing(protected, out):
                failures.append(f"{key}: the glossary term {term.english!r} must be translated as {term.preferred!r}")
        restored = restore(out, table)
        if not missing and not extra and numbers(restored) != numbers(source[key]):
            want_n = " ".join(sorted(numbers(source[key]).elements())) or "none"
            got_n = " ".join(sorted(numbers(restored).elements())) or "none"
            failures.append(f"{key}: numbers differ from the source (source: {want_n}; translation: {got_n})")
        source_lines = len(source[key].strip().splitlines())
        out_lines = len(restored.strip().splitlines())
        if source_lines > 1 and source_lines != out_lines:
            failures.append(f"{key}: {out_lines} lines, the source has {source_lines}; keep the line breaks")
    return failures


@dataclass(frozen=True)
class QAScores:
    chrf: float
    segment_chrf: dict[str, float]
    length_ratio: dict[str, float]


def chrf_scores(hypotheses: list[str], references: list[str]) -> tuple[float, list[float]]:
    """Corpus chrF over all segments and each segment's sentence chrF, from one pass of n-gram statistics.

    Equal to CHRF().corpus_score and CHRF().sentence_score (a test holds them equal); the character
    n-grams are extracted once instead of twice, which is most of the stage's CPU per item.
    """
    stats = _CHRF._extract_corpus_statistics(hypotheses, [references])
    corpus = _CHRF._aggregate_and_compute(stats).score
    return corpus, [_CHRF._aggregate_and_compute(stats[i : i + 1]).score for i in range(len(stats))]


def qa_scores(source: dict[str, str], translation: dict[str, str], back: dict[str, str]) -> QAScores:
    keys = list(source)
    hypotheses = [back.get(k, "").lower() for k in keys]
    references = [source[k].lower() for k in keys]
    chrf, per_segment = chrf_scores(hypotheses, references)
    ratios = {k: round(len(translation[k]) / max(1, len(source[k])), 3) for k in keys}
    return QAScores(round(chrf, 2), {k: round(v, 2) for k, v in zip(keys, per_segment, strict=True)}, ratios)


def qa_failures(scores: QAScores, source: dict[str, str], qa: QASettings) -> list[str]:
    failures = []
    if scores.chrf < qa.min_chrf:
        failures.append(
            f"the back-translation scores chrF {scores.chrf:.1f} against the source (at least {qa.min_chrf:.0f} needed): "
            "the meaning drifted; translate more faithfully"
        )
    low, high = qa.length_ratio
    for key, ratio in scores.length_ratio.items():
        if len(source[key]) >= qa.length_ratio_min_chars and not low <= ratio <= high:
            failures.append(
                f"{key}: the translation is {ratio:.2f} times the source's length (expected {low} to {high}); translate all of it and only it"
            )
    return failures
