"""The one item type every benchmark layout is read into, its rejects, and the field helpers.

An `Item` keeps the text AS WRITTEN in the file (eval_tasks scores it verbatim; data_prep and the
LLM stages apply `bimedix.arabic.normalise` to what they write). What the layer decides once for
every stage: which text is the question, the options and the context; the gold option; the
script-detected language; and whether the row is usable at all (a `Reject` with a code).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bimedix import arabic
from bimedix.audit import leaked_markup
from bimedix.mcq import MAX_OPTIONS, OPTION_LETTERS, PUBMEDQA_LABELS

LANGUAGES = ("en", "ar")
LANGUAGE_NAMES = {"en": "English", "ar": "Arabic"}
KINDS = ("mcq", "qa", "chat")


class FormatError(ValueError):
    """A whole-file problem (missing file, a document that does not parse, an undecidable MedMCQA
    `cop` base, ...): one line naming the file (and line)."""


class RowError(ValueError):
    """Raised inside a converter; becomes a Reject with this code and message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Reject:
    code: str  # a short category: missing_field, invalid_json, answer_not_in_options, duplicate, ...
    reason: str  # one line for a person: what is wrong, naming the field


@dataclass(frozen=True, slots=True)
class Item:
    """One question (or open QA pair, or chat) read from a benchmark or training file."""

    kind: str  # "mcq" | "qa" | "chat"
    question: str = ""  # mcq, qa (chat: the first user turn)
    options: tuple[str, ...] = ()  # mcq: the option texts; PubMedQA: its labels in the item's language
    answer: int | None = None  # mcq: the gold option's index
    context: str = ""  # PubMedQA's abstract, a normalised MCQ's context
    language: str = "en"  # detected by script (or the row's own `language` field in exchange formats)
    line: int = 0  # where the row starts in its file (hub rows: their 1-based position)
    id: str | None = None  # the source's own id (PMID, MedMCQA id, an exchange row's id)
    answer_text: str = ""  # qa: the answer
    explanation: str = ""  # MedMCQA `exp`, PubMedQA LONG_ANSWER, an exchange row's explanation
    messages: tuple[dict[str, str], ...] = ()  # chat: [{role, content}]
    subject: str | None = None
    yes_no_maybe: bool = False  # a PubMedQA decision: options are PUBMEDQA_LABELS[language]
    meta: Mapping[str, Any] = field(default_factory=dict)  # layout extras: topic, choice_type, meta_info, origin

    @property
    def letter(self) -> str | None:
        """The gold option as a Latin letter (A..E), the same whatever the item's language."""
        return OPTION_LETTERS["en"][self.answer] if self.answer is not None else None


@dataclass(frozen=True)
class Context:
    """What a converter may know besides the row."""

    language: str | None = None  # declared: a row written in the other script is rejected
    subject: str | None = None  # e.g. the MMLU subject, from the file name
    params: Mapping[str, Any] = field(default_factory=dict)  # found by the format's probe (cop_base)
    min_arabic_share: float = 0.3  # share of Arabic letters from which a text counts as Arabic
    option_counts: tuple[int, ...] | None = None  # the option counts a scored task takes; others rejected
    option_counts_of: str = ""  # what declared them, for the message (e.g. "task bimedix_en_medqa")
    # A scored task's kind of question: True takes yes / no / maybe only (PubMedQA; a normalised MCQ
    # with exactly those options becomes one), False lettered options only; None (training) either.
    yes_no_maybe: bool | None = None


# ---------------------------------------------------------------------------------------------
# Field helpers: rows are looked up case-insensitively (QUESTION, question, Question).


def lower_keys(row: Any) -> dict:
    if not isinstance(row, dict):
        raise RowError("not_an_object", f"expected a JSON object, got {type(row).__name__}")
    return {str(k).strip().lower(): v for k, v in row.items()}


def text(value: Any, name: str, *, required: bool = True) -> str:
    """A field's text as written ('' when optional and absent); a RowError naming the field otherwise."""
    if value is None or (isinstance(value, str) and not arabic.visible(value)):
        if required:
            code = "missing_field" if value is None else "empty_field"
            raise RowError(code, f"missing field '{name}'" if value is None else f"field '{name}' is empty")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError("bad_type", f"field '{name}' must be text, got {type(value).__name__}")
    value = str(value)
    if arabic.has_undecodable(value):
        raise RowError("undecodable", f"field '{name}': undecodable bytes (the file is not valid UTF-8 here)")
    return value


def field_text(row: dict, name: str, *, required: bool = True, aliases: tuple[str, ...] = ()) -> str:
    for key in (name, *aliases):
        if key in row:
            return text(row[key], key, required=required)
    if required:
        raise RowError("missing_field", f"missing field '{name}'")
    return ""


def optional_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        return None
    return str(value).strip()


def language_of(ctx: Context, *texts: str) -> str:
    """The script language of the first text that has letters; a RowError when it is not the declared one."""
    for value in texts:  # detect_language reads the first DETECT_CHARS characters
        language = arabic.detect_language(arabic.normalise(value[: 2 * arabic.DETECT_CHARS]), ctx.min_arabic_share)
        if language is not None:
            break
    else:
        raise RowError("no_letters", "the question has no letters")
    if ctx.language and language != ctx.language:
        raise RowError(
            "language_mismatch",
            f"the question is written in {LANGUAGE_NAMES[language]} but the source is declared "
            f"{LANGUAGE_NAMES[ctx.language]}",
        )
    return language


def check_markup(*texts: str) -> None:
    found = leaked_markup(*texts)
    if found:
        raise RowError("leaked_markup", f"leaked markup {found!r} (a prompt's tags copied into the text)")


def mcq_item(
    ctx: Context,
    question: str,
    options: list[str],
    answer: int | None,
    *,
    line: int = 0,
    context: str = "",
    explanation: str = "",
    id: str | None = None,
    subject: str | None = None,
    language: str | None = None,
    meta: Mapping[str, Any] | None = None,
    answer_key: Any = None,
) -> Item:
    """The checks every multiple-choice layout shares, then the Item."""
    count = len(options)
    if not 2 <= count <= MAX_OPTIONS:
        raise RowError("option_count", f"{count} options; 2 to {MAX_OPTIONS} are supported")
    for letter, option in zip(OPTION_LETTERS["en"], options, strict=False):
        if not arabic.visible(option):
            raise RowError("empty_field", f"option {letter} is empty")
    if answer is None or not 0 <= answer < count:
        shown = " ".join(OPTION_LETTERS["en"][:count])
        raise RowError("answer_not_in_options", f"answer {answer_key!r} is not one of the options {shown}")
    check_markup(question, context, *options)
    detected = language_of(ctx, question, " ".join(options))
    if ctx.option_counts is not None and count not in ctx.option_counts:
        allowed = " or ".join(map(str, ctx.option_counts))
        raise RowError(
            "option_count",
            f"{count} options, but {ctx.option_counts_of or 'the task'} scores {allowed}-option questions",
        )
    return Item(
        kind="mcq",
        question=question,
        options=tuple(options),
        answer=answer,
        context=context,
        language=language or detected,
        line=line,
        id=id,
        explanation=explanation,
        subject=subject if subject is not None else ctx.subject,
        meta=dict(meta or {}),
    )


def yes_no_maybe_item(
    ctx: Context,
    question: str,
    label: int | None,
    decision: Any,
    *,
    context: str,
    line: int = 0,
    explanation: str = "",
    id: str | None = None,
) -> Item:
    if label is None:
        raise RowError("answer_not_in_options", f"final_decision {decision!r} is not yes, no or maybe")
    check_markup(question, context)
    language = language_of(ctx, question)
    if ctx.option_counts is not None and 3 not in ctx.option_counts:
        raise RowError("option_count", f"a yes / no / maybe question cannot feed {ctx.option_counts_of or 'this task'}")
    return Item(
        kind="mcq",
        question=question,
        options=PUBMEDQA_LABELS[language],
        answer=label,
        context=context,
        language=language,
        line=line,
        id=id,
        explanation=explanation,
        subject=ctx.subject,
        yes_no_maybe=True,
    )
