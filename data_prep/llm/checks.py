"""Checks of one translated item, and its automatic QA scores. Pure functions: text in, failures out.

Every failure is a `Failure`: the check that found it (one of CHECKS), the segment, and one
sentence that names the segment and what is wrong, because the same sentence goes back into the
re-translation prompt and into the reviewer's `reason` column (the check's name goes into `checks`).

Structural checks (on the reply, before any back-translation), per segment:
- segments: the reply has exactly the item's segments (so an MCQ keeps its number of options);
- placeholders: each segment holds exactly its own placeholders, once each (numbers, doses,
  units, lab values, drug names, abbreviations and markdown survive);
- arabic_share: at least `min_arabic_ratio` of the prose letters are Arabic, and
- english_run: no run of `max_english_run_words` or more Latin words in the prose; prose leaves
  out placeholders and notation (notation.prose: Latin glosses in parentheses, Roman numerals,
  formulas, karyotypes, single letters);
- glossary: every glossary term of the source appears in one of its Arabic forms (glossary.py:
  senses, synonyms, clitics and endings);
- numbers: after restoring, the same numbers as the source (notation.number_differences: Arabic
  digits and separators, numbers 0-10 written as words);
- lines: the same number of non-blank lines as the source segment (lists keep their shape);
- sentences: no fewer sentences than the source unless the length shows they were merged (a
  segment with fewer sentences and a length ratio under `dropped_sentence_ratio` lost one);
- markup: no HTML tag or entity that the source does not have.
QA (on the back-translation): chrf, the chrF of the back-translation against the source (sacrebleu
chrF2, lower-cased, over all segments of the item) >= min_chrf; length_ratio, the Arabic/English
length ratio (Latin glosses left out) of each segment of at least `length_ratio_min_chars`
characters inside `length_ratio`.

`finished_translation_failures` runs the checks that need no model on a translation made
elsewhere (a person's, another system's), as the stage would see it: benchmarks/bench_qa.py
measures them on real translations.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from sacrebleu.metrics import CHRF

from data_prep.llm.config import QASettings
from data_prep.llm.glossary import Glossary
from data_prep.llm.notation import arabic_share, english_runs, number_differences, sentences, without_glosses
from data_prep.llm.protect import Protected, Protector, placeholders_in, restore

_SEGMENT = re.compile(r'<seg id="([^"]+)">(.*?)</seg>', re.DOTALL)
_CHRF = CHRF()
_TOKEN_CHAR = r"[A-Za-z0-9\u00c0-\u024f]"  # what a protected original may not be glued to (Arabic clitics may)
_MARKUP = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);|</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")

# The checks, in the order they run; a Failure names one of them.
CHECKS = {
    "reply": "the reply itself: cut off, or a segment given twice",
    "segments": "the reply has exactly the item's segments",
    "placeholders": "each segment holds its own placeholders, once each",
    "arabic_share": "enough of the prose letters are Arabic",
    "english_run": "no run of untranslated English words",
    "glossary": "every glossary term in one of its Arabic forms",
    "numbers": "the same numbers as the source",
    "lines": "the same number of lines as the source",
    "sentences": "no fewer sentences than the source, unless the length says they were merged",
    "markup": "no HTML tag or entity the source does not have",
    "length_ratio": "the Arabic/English length ratio of each long segment in range",
    "chrf": "the back-translation's chrF against the source",
    "back_translation": "the back-translation has every segment",
}


@dataclass(frozen=True)
class Failure:
    """One failed check: its name (a key of CHECKS), the segment (None: the whole item), the sentence."""

    check: str
    message: str
    segment: str | None = None

    def __post_init__(self):
        if self.check not in CHECKS:
            raise ValueError(f"unknown check {self.check!r}")

    def __str__(self) -> str:
        return self.message

    def to_row(self) -> dict:
        return {"check": self.check, "segment": self.segment, "message": self.message}


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


def segment_failures(expected: list[str], found: dict[str, str], problems: list[str]) -> list[Failure]:
    """Problems of the reply (check `reply`) and missing or unknown segments (check `segments`)."""
    failures = [Failure("reply", p, _segment_of(p, expected)) for p in problems]
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    if not found:
        failures.append(
            Failure("segments", f"the reply has no <seg> blocks; expected {len(expected)}: {', '.join(expected)}")
        )
        return failures
    if missing:
        failures.append(
            Failure(
                "segments", f"segments missing from the reply: {', '.join(missing)} (expected {len(expected)} blocks)"
            )
        )
    if extra:
        failures.append(Failure("segments", f"segments that do not exist in the source: {', '.join(extra)}"))
    return failures


def _segment_of(message: str, segments: list[str]) -> str | None:
    return next((s for s in segments if message.startswith(f"{s}:")), None)


def placeholder_failures(
    key: str, protected: str, out: str, table: Protected, want: Counter | None = None
) -> list[Failure]:
    """Each placeholder of the protected source segment exactly once in its own segment.

    `want`: the placeholders expected (default: all of the protected source segment's)."""
    want = placeholders_in(protected) if want is None else want
    got = placeholders_in(out)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    repeated = sorted(n for n in got if n in want and got[n] > want[n])
    failures = []
    if missing:
        shown = ", ".join(f"⟦{n}⟧ ({table.originals[n]})" for n in missing)
        failures.append(Failure("placeholders", f"{key}: placeholders missing: {shown}; copy each exactly once", key))
    if extra:
        shown = ", ".join(f"⟦{n}⟧" for n in extra)
        failures.append(
            Failure("placeholders", f"{key}: placeholders that belong elsewhere or do not exist: {shown}", key)
        )
    if repeated:
        shown = ", ".join(f"⟦{n}⟧" for n in repeated)
        failures.append(Failure("placeholders", f"{key}: placeholders repeated: {shown}", key))
    return failures


def script_failures(key: str, out: str, qa: QASettings) -> list[Failure]:
    """Untranslated English in a reply segment (placeholders and notation left out)."""
    failures = []
    ratio = arabic_share(out)
    if ratio < qa.min_arabic_ratio:
        failures.append(
            Failure(
                "arabic_share",
                f"{key}: only {ratio:.0%} of the letters are Arabic (at least {qa.min_arabic_ratio:.0%} needed)",
                key,
            )
        )
    for run in english_runs(out, qa.max_english_run_words):
        failures.append(Failure("english_run", f"{key}: untranslated English left: {run.strip()!r}", key))
    return failures


def glossary_failures(key: str, protected: str, out: str, glossary: Glossary) -> list[Failure]:
    return [
        Failure("glossary", f"{key}: the glossary term {term.english!r} must be translated as {term.preferred!r}", key)
        for term in glossary.missing(protected, out)
    ]


def number_failures(key: str, source: str, restored: str) -> list[Failure]:
    missing, extra = number_differences(source, restored)
    if not missing and not extra:
        return []
    parts = []
    if missing:
        parts.append(f"missing: {' '.join(sorted(missing.elements()))}")
    if extra:
        parts.append(f"not in the source: {' '.join(sorted(extra.elements()))}")
    return [Failure("numbers", f"{key}: numbers differ from the source ({'; '.join(parts)})", key)]


def _lines(text: str) -> int:
    return sum(1 for line in text.strip().splitlines() if line.strip())


def line_failures(key: str, source: str, restored: str) -> list[Failure]:
    """The same number of non-blank lines as a source segment of more than one line."""
    source_lines, out_lines = _lines(source), _lines(restored)
    if source_lines > 1 and source_lines != out_lines:
        return [Failure("lines", f"{key}: {out_lines} lines, the source has {source_lines}; keep the line breaks", key)]
    return []


def sentence_failures(key: str, source: str, restored: str, qa: QASettings) -> list[Failure]:
    """Fewer sentences than the source and shorter than most translations: a sentence was dropped.

    Translators merge an exam question's sentences ("A patient has X. Which sign?" -> one
    question) and keep the length; a dropped sentence takes its length with it. The ratio gate
    (`dropped_sentence_ratio`) is the lower quartile of the ratios of real translations."""
    want, got = sentences(source, "en"), sentences(restored, "ar")
    ratio = len(without_glosses(restored)) / max(1, len(source))
    if want >= 2 and got < want and ratio < qa.dropped_sentence_ratio:
        return [
            Failure(
                "sentences",
                f"{key}: {got} sentence(s) where the source has {want}, and {ratio:.2f} times its length; "
                "a sentence seems dropped: translate every sentence",
                key,
            )
        ]
    return []


def markup_failures(key: str, source: str, restored: str) -> list[Failure]:
    """HTML tags or entities in the translation that the source does not have (leaked from a tool)."""
    leaked = sorted(set(_MARKUP.findall(restored)) - set(_MARKUP.findall(source)))
    if leaked:
        return [Failure("markup", f"{key}: markup that is not in the source: {' '.join(leaked)}; remove it", key)]
    return []


def structural_failures(
    source: dict[str, str],
    protected_source: dict[str, str],
    reply: dict[str, str],
    table: Protected,
    glossary: Glossary,
    qa: QASettings,
) -> list[Failure]:
    failures: list[Failure] = []
    for key, protected in protected_source.items():
        if key not in reply:
            continue
        out = reply[key]
        marks = placeholder_failures(key, protected, out, table)
        failures += marks
        failures += script_failures(key, out, qa)
        if qa.check_glossary:
            failures += glossary_failures(key, protected, out, glossary)
        restored = restore(out, table)
        if not marks:  # a lost or moved placeholder is already named; its number would be named twice
            failures += number_failures(key, source[key], restored)
        failures += line_failures(key, source[key], restored)
        failures += sentence_failures(key, source[key], restored, qa)
        failures += markup_failures(key, source[key], restored)
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


def length_ratios(source: dict[str, str], translation: dict[str, str]) -> dict[str, float]:
    """Arabic/English length of each segment, the translation's Latin glosses left out (they are additions)."""
    return {k: round(len(without_glosses(translation.get(k, ""))) / max(1, len(source[k])), 3) for k in source}


def qa_scores(source: dict[str, str], translation: dict[str, str], back: dict[str, str]) -> QAScores:
    keys = list(source)
    hypotheses = [back.get(k, "").lower() for k in keys]
    references = [source[k].lower() for k in keys]
    chrf, per_segment = chrf_scores(hypotheses, references)
    segment_chrf = {k: round(v, 2) for k, v in zip(keys, per_segment, strict=True)}
    return QAScores(round(chrf, 2), segment_chrf, length_ratios(source, translation))


def length_failures(ratios: dict[str, float], source: dict[str, str], qa: QASettings) -> list[Failure]:
    low, high = qa.length_ratio
    return [
        Failure(
            "length_ratio",
            f"{key}: the translation is {ratio:.2f} times the source's length (expected {low} to {high}); "
            "translate all of it and only it",
            key,
        )
        for key, ratio in ratios.items()
        if len(source[key]) >= qa.length_ratio_min_chars and not low <= ratio <= high
    ]


def qa_failures(scores: QAScores, source: dict[str, str], qa: QASettings) -> list[Failure]:
    failures = []
    if scores.chrf < qa.min_chrf:
        failures.append(
            Failure(
                "chrf",
                f"the back-translation scores chrF {scores.chrf:.1f} against the source (at least {qa.min_chrf:.0f} "
                "needed): the meaning drifted; translate more faithfully",
            )
        )
    return failures + length_failures(scores.length_ratio, source, qa)


# ---------------------------------------------------------------------------------------------
# A translation made elsewhere, checked as the stage would check a reply.

# The checks that need no model and apply to a translation whose translator never saw placeholders.
FINISHED_CHECKS = ("arabic_share", "english_run", "glossary", "numbers", "lines", "sentences", "markup", "length_ratio")


def place_placeholders(translation: str, protected: str, table: Protected) -> str:
    """`translation` as the stage would have seen the model's reply: each original that the source
    segment protects and that appears in the translation as a whole token (not glued to a Latin
    letter or a digit; an Arabic clitic may precede it) becomes its placeholder, longest first, each once."""
    spans: list[tuple[int, int, int]] = []
    wanted = sorted(placeholders_in(protected), key=lambda n: -len(table.originals[n]))
    for number in wanted:
        original = table.originals[number]
        left = rf"(?<!{_TOKEN_CHAR})" if original[:1].isalnum() else ""
        right = rf"(?!{_TOKEN_CHAR})" if original[-1:].isalnum() else ""
        pattern = re.compile(left + re.escape(original) + right)
        for match in pattern.finditer(translation):
            if not any(match.start() < end and start < match.end() for start, end, _ in spans):
                spans.append((match.start(), match.end(), number))
                break
    out = translation
    for start, end, number in sorted(spans, reverse=True):
        out = f"{out[:start]}⟦{number}⟧{out[end:]}"
    return out


@dataclass(frozen=True)
class StageView:
    """A finished translation as the stage sees it: the protected source, the reply with placeholders."""

    table: Protected
    protected: dict[str, str]
    reply: dict[str, str]


def stage_view(source: dict[str, str], translation: dict[str, str], protector: Protector) -> StageView:
    table = Protected()
    protected = {k: protector.protect(v, table) for k, v in source.items()}
    reply = {k: place_placeholders(translation.get(k, ""), protected[k], table) for k in source}
    return StageView(table, protected, reply)


def finished_translation_failures(
    source: dict[str, str],
    translation: dict[str, str],
    glossary: Glossary,
    qa: QASettings,
    protector: Protector,
    expected: StageView | None = None,
) -> list[Failure]:
    """The checks of FINISHED_CHECKS on a translation made elsewhere, segment by segment.

    The translator never saw placeholders, so the placeholders check does not apply and the
    numbers check runs on every segment (in the stage it waits for the placeholders to be right).
    With `expected` (the stage view of a trusted translation of the same source), the
    placeholders found there must also be found, each in its own segment: how the stage would see
    a corrupted copy of that translation (benchmarks/bench_qa.py).
    """
    view = stage_view(source, translation, protector)
    failures = segment_failures(list(source), {k: v for k, v in translation.items() if v.strip()}, [])
    for key, protected in view.protected.items():
        if key not in translation:
            continue
        out = view.reply[key]
        if expected is not None:
            lost = sorted(set(placeholders_in(expected.reply[key])) - set(placeholders_in(out)))
            if lost:
                shown = ", ".join(f"⟦{n}⟧ ({view.table.originals[n]})" for n in lost)
                failures.append(
                    Failure("placeholders", f"{key}: placeholders missing: {shown}; copy each exactly once", key)
                )
        failures += script_failures(key, out, qa)
        if qa.check_glossary:
            failures += glossary_failures(key, protected, out, glossary)
        restored = translation[key]
        failures += number_failures(key, source[key], restored)
        failures += line_failures(key, source[key], restored)
        failures += sentence_failures(key, source[key], restored, qa)
        failures += markup_failures(key, source[key], restored)
    failures += length_failures(length_ratios(source, translation), source, qa)
    return failures
