"""Source formats: one pure converter per format, row -> Record | Reject, in the SOURCES registry.

A converter does no I/O. It gets one row as the reader produced it (a dict from JSON, a list of
cells from CSV, a dict from the hub) and a `SourceContext` (the source's settings from the mix,
the phrasings, the seed, format parameters found by the format's probe), and returns a `Record`
or a `Reject` naming what is wrong. Adding a source format is one entry in SOURCES.

    from data_prep.sources import SOURCES, SourceContext
    record = SOURCES["medqa"].convert(row, SourceContext(source="medqa_train"))
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bimedix.mcq import OPTION_LETTERS, PUBMEDQA_LABELS
from data_prep.dedup import canonical_words
from data_prep.prompts import Prompts, default_prompts
from data_prep.records import DataPrepError, Record, Reject, RowError
from data_prep.text import TextError, detect_language, normalise

LANGUAGE_NAMES = {"en": "English", "ar": "Arabic"}


@dataclass(frozen=True)
class SourceContext:
    source: str = "source"
    language: str | None = None  # declared in the mix; a record whose script says otherwise is rejected
    subject: str | None = None  # e.g. the MMLU subject, from the mix or the file name
    seed: int = 0  # picks the phrasing of each question
    explanations: bool = True  # keep MedMCQA `exp` / PubMedQA LONG_ANSWER in the answer
    min_arabic_share: float = 0.3  # share of Arabic letters from which a text counts as Arabic
    params: Mapping[str, Any] = field(default_factory=dict)  # found by the format's probe (cop_base)
    prompts: Prompts = field(default_factory=default_prompts)


def rejects(convert: Callable[[Any, SourceContext], Record]) -> Callable[[Any, SourceContext], Record | Reject]:
    """Turn the RowError a converter raises into a Reject; a row of the wrong shape is a Reject too."""

    @functools.wraps(convert)
    def wrapper(row: Any, ctx: SourceContext) -> Record | Reject:
        try:
            return convert(row, ctx)
        except RowError as err:
            return Reject(err.code, err.message)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            return Reject("malformed", f"malformed row ({type(err).__name__}: {err})")

    return wrapper


# ---------------------------------------------------------------------------------------------
# Field helpers: every text goes through normalise(); a problem names the field.


def _object(row: Any) -> dict:
    if not isinstance(row, dict):
        raise RowError("not_an_object", f"expected a JSON object, got {type(row).__name__}")
    return row


def _value(value: Any, name: str, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise RowError("missing_field", f"missing field '{name}'")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError("bad_type", f"field '{name}' must be text, got {type(value).__name__}")
    try:
        text = normalise(str(value))
    except TextError as err:
        raise RowError("undecodable", f"field '{name}': {err}") from None
    if not text:
        if required:
            raise RowError("empty_field", f"field '{name}' is empty")
        return None
    return text


def _field(row: dict, name: str, *, required: bool = True) -> str | None:
    if name not in row and required:
        raise RowError("missing_field", f"missing field '{name}'")
    return _value(row.get(name), name, required=required)


def _loose(text: str) -> str:
    return " ".join(canonical_words(text))


def _language(ctx: SourceContext, *texts: str) -> str:
    for text in texts:
        language = detect_language(text, ctx.min_arabic_share)
        if language is not None:
            break
    else:
        raise RowError("no_letters", "the question has no letters")
    if ctx.language and language != ctx.language:
        raise RowError(
            "language_mismatch",
            f"the question is written in {LANGUAGE_NAMES[language]} but the source is declared {LANGUAGE_NAMES[ctx.language]}",
        )
    return language


def _letter_index(letter: str, count: int, name: str) -> int:
    """'B', '(B)', 'b' or the Arabic 'ب' -> 1, if it names one of `count` options."""
    value = letter.strip().strip("()").strip()
    for letters in OPTION_LETTERS.values():
        if value.upper() in letters[:count]:
            return letters.index(value.upper())
    shown = " ".join(OPTION_LETTERS["en"][:count])
    raise RowError("answer_not_in_options", f"{name} '{letter}' is not one of the options {shown}")


def mcqa_record(
    ctx: SourceContext,
    question: str,
    options: list[str],
    answer: int,
    *,
    context: str | None = None,
    explanation: str | None = None,
    metadata: dict | None = None,
) -> Record:
    """The MCQA record every multiple-choice format builds (question, options, answer index)."""
    if not 2 <= len(options) <= len(OPTION_LETTERS["en"]):
        raise RowError("option_count", f"{len(options)} options; 2 to {len(OPTION_LETTERS['en'])} are supported")
    language = _language(ctx, question, " ".join(options))
    source_explanation, explanation = explanation, (explanation if ctx.explanations else None)
    user, assistant, phrasing = ctx.prompts.render_mcqa(
        language, question, options, answer, context=context, explanation=explanation, seed=ctx.seed
    )
    letters = OPTION_LETTERS[language]
    parts = {"question": question, "context": context or "", "explanation": source_explanation or ""}
    return Record(
        task="mcqa",
        language=language,
        messages=[{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        probe_text="\n".join([question, *options]),
        extra_text=context or "",
        metadata={
            "options": options,
            "label": answer,
            "answer_letter": letters[answer],
            "phrasing": phrasing,
            "has_explanation": explanation is not None,
            "subject": ctx.subject,
            **(metadata or {}),
        },
        parts=parts,
    )


def qa_record(
    ctx: SourceContext, question: str, answer: str, *, context: str | None = None, metadata: dict | None = None
) -> Record:
    language = _language(ctx, question, answer)
    user = ctx.prompts.render_qa(language, question, context)
    return Record(
        task="qa",
        language=language,
        messages=[{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        probe_text=question,
        extra_text="\n".join([context or "", answer]),
        metadata={"subject": ctx.subject, **(metadata or {})},
        parts={"question": question, "answer": answer, "context": context or ""},
    )


# ---------------------------------------------------------------------------------------------
# The converters.


@rejects
def convert_medqa(row: Any, ctx: SourceContext) -> Record:
    """MedQA (USMLE) JSON lines: question, options {A..D or A..E}, answer_idx, answer, meta_info."""
    row = _object(row)
    question = _field(row, "question")
    options_in = row.get("options")
    if not isinstance(options_in, dict) or not options_in:
        raise RowError("missing_field", "missing field 'options' (an object {A: ..., B: ...})")
    keys = sorted(options_in)
    expected = list(OPTION_LETTERS["en"][: len(keys)])
    if keys != expected:
        raise RowError("bad_options", f"option keys {''.join(map(str, keys))} are not {''.join(expected)}")
    options = [_value(options_in[k], f"options.{k}") for k in keys]
    letter = _field(row, "answer_idx")
    if letter not in keys:
        raise RowError("answer_not_in_options", f"answer_idx '{letter}' is not one of the options {' '.join(keys)}")
    answer = keys.index(letter)
    answer_text = _field(row, "answer", required=False)
    if answer_text is not None and answer_text != options[answer] and _loose(answer_text) != _loose(options[answer]):
        raise RowError("answer_mismatch", f"answer text does not match option {letter}")
    meta = {"meta_info": row.get("meta_info") if isinstance(row.get("meta_info"), str) else None}
    return mcqa_record(ctx, question, options, answer, metadata=meta)


def _cop(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def probe_medmcqa(rows: Iterable[Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Decide whether `cop` counts from 1 (original release) or 0 (Hugging Face copy).

    cop 0 only exists 0-based and cop 4 only 1-based; a file with both is a mix of the two and is
    refused, and one with neither (only 1..3) cannot be told apart: set `cop_base` in the mix.
    A caller that never looks at the label (decontamination) passes `undecided_base` to use then.
    """
    seen = Counter(_cop(row.get("cop")) for row in rows if isinstance(row, dict))
    zero, four = seen.get(0, 0), seen.get(4, 0)
    declared = params.get("cop_base")
    if zero and four:
        raise DataPrepError(
            f"MedMCQA cop is ambiguous: {zero} row(s) have cop 0 (0-based, the hub copy) and {four} have cop 4 "
            "(1-based, the original release); split the file by origin"
        )
    if declared is not None:
        if (declared == 1 and zero) or (declared == 0 and four):
            raise DataPrepError(
                f"cop_base {declared} is set in the mix but cop {0 if zero else 4} was seen: the file says otherwise"
            )
        return {"cop_base": declared, "cop_evidence": f"set in the mix ({sum(seen.values())} rows)"}
    if zero:
        return {"cop_base": 0, "cop_evidence": f"0-based (hub copy): cop 0 seen in {zero} row(s), never 4"}
    if four:
        return {"cop_base": 1, "cop_evidence": f"1-based (original release): cop 4 seen in {four} row(s), never 0"}
    if params.get("undecided_base") is not None:
        base = params["undecided_base"]
        return {"cop_base": base, "cop_evidence": f"undecided (only cop 1..3 seen); {base} assumed, labels unused"}
    raise DataPrepError(
        "cannot tell whether MedMCQA cop is 0-based (hub copy) or 1-based (original release): "
        "no row has cop 0 or 4; set cop_base: 0 or 1 for this source in the mix"
    )


@rejects
def convert_medmcqa(row: Any, ctx: SourceContext) -> Record:
    """MedMCQA JSON lines: question, opa..opd, cop (0- or 1-based, see probe_medmcqa), exp, subject_name."""
    row = _object(row)
    question = _field(row, "question")
    options = [_field(row, name) for name in ("opa", "opb", "opc", "opd")]
    if row.get("cop") is None:
        raise RowError("missing_field", "missing field 'cop' (an unlabelled row)")
    cop = _cop(row["cop"])
    base = int(ctx.params["cop_base"])
    if cop is None or not base <= cop < base + 4:
        raise RowError("answer_not_in_options", f"cop {row['cop']!r} is not in {base}..{base + 3} ({base}-based)")
    explanation = _field(row, "exp", required=False)
    meta = {
        "source_id": row.get("id") if isinstance(row.get("id"), str) else None,
        "subject": _field(row, "subject_name", required=False) or ctx.subject,
        "topic": _field(row, "topic_name", required=False),
        "choice_type": row.get("choice_type") if isinstance(row.get("choice_type"), str) else None,
    }
    return mcqa_record(ctx, question, options, cop - base, explanation=explanation, metadata=meta)


_DECISIONS = {label: i for labels in PUBMEDQA_LABELS.values() for i, label in enumerate(labels)}


@rejects
def convert_pubmedqa(row: Any, ctx: SourceContext) -> Record:
    """PubMedQA: ori_pqal.json / ori_pqaa.json (labelled) and ori_pqau.json (unlabelled) entries, whose
    PMID the reader passes as `_key`; or the hub layout (pubid, question, context{contexts}, ...).

    Labelled -> a yes/no/maybe MCQA with LONG_ANSWER as the explanation; unlabelled -> an open
    question answered by LONG_ANSWER.
    """
    row = _object(row)
    if "QUESTION" in row or "question" not in row:
        question = _field(row, "QUESTION")
        contexts, decision_in, long_name, pmid = (
            row.get("CONTEXTS"),
            row.get("final_decision"),
            "LONG_ANSWER",
            row.get("_key"),
        )
        context_name = "CONTEXTS"
    else:  # hub layout (qiaojin/PubMedQA)
        question = _field(row, "question")
        inner = row.get("context")
        contexts = inner.get("contexts") if isinstance(inner, dict) else inner
        decision_in, long_name, pmid, context_name = (
            row.get("final_decision"),
            "long_answer",
            row.get("pubid"),
            "context",
        )
    if isinstance(contexts, str):
        contexts = [contexts]
    if not isinstance(contexts, list) or not contexts:
        raise RowError("missing_field", f"missing field '{context_name}' (a list of abstract paragraphs)")
    context = "\n".join(_value(c, context_name) for c in contexts)
    long_answer = _field(row, long_name, required=False)
    meta = {"source_id": str(pmid) if pmid is not None else None}
    decision = _value(decision_in, "final_decision", required=False)
    if decision is None:
        if long_answer is None:
            raise RowError("missing_field", f"neither 'final_decision' nor '{long_name}': nothing to answer with")
        return qa_record(ctx, question, long_answer, context=context, metadata=meta)
    if decision.lower() not in _DECISIONS:
        raise RowError("answer_not_in_options", f"final_decision '{decision}' is not yes, no or maybe")
    language = _language(ctx, question)
    options = list(PUBMEDQA_LABELS[language])
    return mcqa_record(
        ctx, question, options, _DECISIONS[decision.lower()], context=context, explanation=long_answer, metadata=meta
    )


@rejects
def convert_mmlu_csv(row: Any, ctx: SourceContext) -> Record:
    """MMLU-style CSV without a header: question,A,B,C,D,answer (English or Arabic; the answer
    letter may be Latin or Arabic). Also the hub layout (cais/mmlu): question, choices, answer."""
    if isinstance(row, dict):
        question = _field(row, "question")
        choices = row.get("choices")
        if not isinstance(choices, list) or len(choices) != 4:
            raise RowError("bad_options", "field 'choices' must be a list of 4 options")
        options = [_value(c, f"choices[{i}]") for i, c in enumerate(choices)]
        answer_in = row.get("answer")
        if isinstance(answer_in, int) and not isinstance(answer_in, bool):
            if not 0 <= answer_in < 4:
                raise RowError("answer_not_in_options", f"answer {answer_in} is not in 0..3")
            answer = answer_in
        else:
            answer = _letter_index(_field(row, "answer"), 4, "answer")
        subject = row.get("subject") if isinstance(row.get("subject"), str) else None
    else:
        if not isinstance(row, list) or len(row) != 6:
            count = len(row) if isinstance(row, list) else "no"
            raise RowError("column_count", f"expected 6 columns (question,A,B,C,D,answer), got {count}")
        question = _value(row[0], "question (column 1)")
        options = [_value(cell, f"option {'ABCD'[i]} (column {i + 2})") for i, cell in enumerate(row[1:5])]
        answer = _letter_index(_value(row[5], "answer (column 6)"), 4, "answer")
        subject = None
    return mcqa_record(ctx, question, options, answer, metadata={"subject": subject or ctx.subject})


_OPTION_LINE = re.compile(r"^\s*\(\s*([A-Za-z\u0621-\u064a])\s*\)\s*(.*)$")


def parse_options(text: str) -> list[str]:
    """'(A) first\\n(B) second' -> ['first', 'second']; a line without a letter continues the option above."""
    letters, options = [], []
    for line in text.split("\n"):
        match = _OPTION_LINE.match(line)
        if match:
            letters.append(match.group(1).upper())
            options.append(match.group(2).strip())
        elif options and line.strip():
            options[-1] = f"{options[-1]}\n{line.strip()}"
        elif line.strip():
            raise RowError("bad_options", "field 'options' must be lines '(A) ...', one per option")
    if not options:
        raise RowError("bad_options", "field 'options' has no '(A) ...' lines")
    for expected in OPTION_LETTERS.values():
        if letters == list(expected[: len(letters)]):
            break
    else:
        raise RowError("bad_options", f"option letters {' '.join(letters)} are not A, B, C... in order")
    for letter, option in zip(letters, options, strict=True):
        if not option:
            raise RowError("empty_field", f"option ({letter}) is empty")
    return options


@rejects
def convert_mcq_json(row: Any, ctx: SourceContext) -> Record:
    """Normalised MCQ: {question, options "(A) ..\\n(B) ..", answer "(A)", context, source}."""
    row = _object(row)
    question = _field(row, "question")
    options = parse_options(_field(row, "options"))
    answer = _letter_index(_field(row, "answer"), len(options), "answer")
    context = _field(row, "context", required=False)
    origin = row.get("source") if isinstance(row.get("source"), str) else None
    return mcqa_record(ctx, question, options, answer, context=context, metadata={"origin": origin})


@rejects
def convert_qa_jsonl(row: Any, ctx: SourceContext) -> Record:
    """Open medical QA JSON lines: {question, answer} with an optional context and id."""
    row = _object(row)
    question = _field(row, "question")
    answer = _field(row, "answer")
    context = _field(row, "context", required=False)
    meta = {"source_id": str(row["id"]) if row.get("id") is not None else None}
    return qa_record(ctx, question, answer, context=context, metadata=meta)


@rejects
def convert_chat_jsonl(row: Any, ctx: SourceContext) -> Record:
    """Multi-turn chats: {messages: [{role, content}]}, an optional first system message, then
    user/assistant turns alternating, starting with the user and ending with the assistant.
    The language is the first user turn's; later turns may switch script and are kept as written."""
    row = _object(row)
    turns = row.get("messages")
    if not isinstance(turns, list) or not turns:
        raise RowError("missing_field", "missing field 'messages' (a list of {role, content})")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            raise RowError("bad_messages", f"messages[{i}] must be an object with 'role' and 'content'")
        role = turn["role"]
        if i == 0:
            expected = ("system", "user")
        elif messages[-1]["role"] in ("system", "assistant"):
            expected = ("user",)
        else:
            expected = ("assistant",)
        if role not in expected:
            raise RowError("bad_messages", f"messages[{i}] has role {role!r}; expected {' or '.join(expected)}")
        messages.append({"role": role, "content": _value(turn["content"], f"messages[{i}].content")})
    if messages[-1]["role"] != "assistant":
        raise RowError("bad_messages", "the last message must be the assistant's")
    users = [m["content"] for m in messages if m["role"] == "user"]
    language = _language(ctx, users[0], "\n".join(users))  # the language the conversation opens in
    return Record(
        task="chat",
        language=language,
        messages=messages,
        probe_text="\n".join(users),
        extra_text="\n".join(m["content"] for m in messages if m["role"] != "user"),
        metadata={"subject": ctx.subject, "turns": len(users)},
    )


# ---------------------------------------------------------------------------------------------
# The registry. `reader` is how readers.py reads the file (rows from the hub are dicts anyway):
#   jsonl: one JSON object per line; csv: rows of cells, no header;
#   json: a JSON array of objects, or JSON lines (told apart by the first character);
#   json_dict: one JSON object keyed by id (the key reaches the converter as `_key`).

ProbeFn = Callable[[Iterable[Any], Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Format:
    name: str
    reader: str
    convert: Callable[[Any, SourceContext], Record | Reject]
    description: str
    probe: ProbeFn | None = None  # reads every row once before converting; returns SourceContext.params
    params: tuple[str, ...] = ()  # the format-specific keys a mix entry may set (passed to the probe)


SOURCES: dict[str, Format] = {
    f.name: f
    for f in [
        Format("medqa", "jsonl", convert_medqa, "MedQA (USMLE) JSON lines: question, options{A..}, answer_idx"),
        Format(
            "medmcqa",
            "jsonl",
            convert_medmcqa,
            "MedMCQA JSON lines: opa..opd, cop (1-based original or 0-based hub copy, detected), exp",
            probe=probe_medmcqa,
            params=("cop_base",),
        ),
        Format("pubmedqa", "json_dict", convert_pubmedqa, "PubMedQA ori_pq*.json: {PMID: {QUESTION, CONTEXTS, ...}}"),
        Format("mmlu_csv", "csv", convert_mmlu_csv, "MMLU-style CSV, no header: question,A,B,C,D,answer"),
        Format(
            "mcq_json", "json", convert_mcq_json, "normalised MCQ {question, options '(A) ..', answer '(A)', context}"
        ),
        Format("qa_jsonl", "jsonl", convert_qa_jsonl, "open QA JSON lines: {question, answer[, context]}"),
        Format("chat_jsonl", "jsonl", convert_chat_jsonl, "multi-turn chats: {messages: [{role, content}]}"),
    ]
}


def get_format(name: str) -> Format:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataPrepError(f"unknown format {name!r}; known formats: {', '.join(SOURCES)}") from None
