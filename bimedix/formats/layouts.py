"""One converter per original layout: `row -> Item` (a `RowError` for an unusable row). Pure: no I/O.

A converter gets one row as the reader produced it (a dict from JSON or the hub, a list of cells
from a headerless CSV, a {column: cell} dict from a CSV with a header) and the `Context`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from bimedix import arabic
from bimedix.formats.items import (
    Context,
    FormatError,
    Item,
    RowError,
    check_markup,
    field_text,
    language_of,
    lower_keys,
    mcq_item,
    optional_id,
    text,
    yes_no_maybe_item,
)
from bimedix.mcq import LABELS, MAX_OPTIONS, OPTION_LETTERS, PUBMEDQA_LABELS, letter_key, option_label, pubmedqa_label

# ---------------------------------------------------------------------------------------------
# MedQA (USMLE): question, options {A..D} or {A..E}, answer_idx, answer, meta_info


def _options_field(value: Any, name: str = "options") -> list[str]:
    """options as a mapping {A: .., B: ..} (letters in order from A) or a list (of texts or {key, value})."""
    if isinstance(value, dict) and value:
        keys = sorted(value, key=lambda k: str(k).strip().upper())
        letters = "".join(str(k).strip().upper() for k in keys)
        expected = "".join(OPTION_LETTERS["en"][: len(keys)])
        if letters != expected:
            raise RowError("bad_options", f"option keys {letters} are not {expected}")
        return [text(value[k], f"{name}.{k}") for k in keys]
    if isinstance(value, list) and value:
        return [
            text(v.get("value") if isinstance(v, dict) else v, f"{name}[{i}]", required=True)
            for i, v in enumerate(value)
        ]
    raise RowError("missing_field", f"missing field '{name}' (an object {{A: ..., B: ...}} or a list)")


def _answer_by_text(answer: str, options: list[str]) -> int | None:
    key = arabic.fold_words(answer)
    matches = [i for i, option in enumerate(options) if arabic.fold_words(option) == key]
    return matches[0] if len(matches) == 1 else None


def convert_medqa(row: Any, ctx: Context, line: int = 0) -> Item:
    row = lower_keys(row)
    question = field_text(row, "question")
    options = _options_field(row.get("options"))
    if len(options) > MAX_OPTIONS:
        raise RowError("option_count", f"{len(options)} options; 2 to {MAX_OPTIONS} are supported")
    answer_text = field_text(row, "answer", required=False)
    if row.get("answer_idx") is not None:
        key = row["answer_idx"]
        index = letter_key(key, len(options)) if isinstance(key, str) else None
        if index is None:
            shown = " ".join(OPTION_LETTERS["en"][: len(options)])
            raise RowError("answer_not_in_options", f"answer_idx {key!r} is not one of the options {shown}")
        if answer_text and arabic.fold_words(answer_text) != arabic.fold_words(options[index]):
            raise RowError("answer_mismatch", f"answer text does not match option {OPTION_LETTERS['en'][index]}")
    elif answer_text:
        index = _answer_by_text(answer_text, options)
        if index is None:
            raise RowError(
                "answer_not_in_options", f"answer {answer_text[:60]!r} is not the text of exactly one option"
            )
    else:
        raise RowError("missing_field", "missing field 'answer_idx' (and no 'answer' text)")
    meta = {"meta_info": row["meta_info"] if isinstance(row.get("meta_info"), str) else None}
    return mcq_item(ctx, question, options, index, line=line, id=optional_id(row.get("id")), meta=meta, answer_key=key if row.get("answer_idx") is not None else answer_text)  # fmt: skip


def convert_medqa_hf(row: Any, ctx: Context, line: int = 0) -> Item:
    """MedQA as GBaker/MedQA-USMLE-4-options-hf (lm-eval's medqa_4options): sent1, ending0..3, label."""
    row = lower_keys(row)
    question = field_text(row, "sent1")
    options = []
    while f"ending{len(options)}" in row:
        options.append(text(row[f"ending{len(options)}"], f"ending{len(options)}"))
    key = row.get("label")
    return mcq_item(ctx, question, options, letter_key(key, len(options)), line=line, id=optional_id(row.get("id")), answer_key=key)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# MedMCQA: question, opa..opd, cop (1-based in the original release, 0-based in the hub copy)


def _cop(value: Any) -> int | None:
    """1, "2", Arabic-Indic "٣" (with direction marks or spaces) -> the number; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        folded = arabic.fold(value)
        if re.fullmatch(r"-?[0-9]+", folded):
            return int(folded)
    return None


_MEDMCQA_OPTIONS = ("opa", "opb", "opc", "opd")


def probe_medmcqa(rows: Iterable[Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Decide from the file whether `cop` counts from 1 (original release) or 0 (Hugging Face copy).

    cop 0 exists only 0-based and cop 4 only 1-based. Both: a mix of the two, refused. Neither (only
    1..3): undecidable, refused unless `cop_base` is declared (params, with `cop_base_from` naming
    where). A declared base that the file contradicts is refused. A file with no MedMCQA rows (no
    'opa') or no labels at all is not decided here: its rows are rejected for the missing field.
    `undecided_base` is used when only 1..3 occur and the caller never reads the label.
    """
    seen: Counter = Counter()
    medmcqa_rows = 0
    for row in rows:
        if not isinstance(row, dict):
            continue
        keys = {str(k).strip().lower(): v for k, v in row.items()}
        if "opa" not in keys:
            continue
        medmcqa_rows += 1
        if keys.get("cop") is not None:
            seen[_cop(keys["cop"])] += 1
    declared, origin = params.get("cop_base"), params.get("cop_base_from") or "declared"
    zero, four = seen.get(0, 0), seen.get(4, 0)
    labelled = sum(seen.values())
    if zero and four:
        raise FormatError(
            f"MedMCQA cop is ambiguous: {zero} row(s) have cop 0 (0-based, the hub copy) and {four} have cop 4 "
            "(1-based, the original release); split the file by origin"
        )
    if declared is not None:
        if (declared == 1 and zero) or (declared == 0 and four):
            raise FormatError(
                f"cop_base {declared} ({origin}) contradicts the file: cop {0 if zero else 4} occurs in "
                f"{zero or four} of its {labelled} labelled rows, so it counts from {1 - declared}"
            )
        return {"cop_base": declared, "cop_evidence": f"cop_base {declared} ({origin}); {labelled} labelled rows agree"}
    if zero:
        return {"cop_base": 0, "cop_evidence": f"0-based (hub copy): cop 0 in {zero} of {labelled} rows, never 4"}
    if four:
        return {
            "cop_base": 1,
            "cop_evidence": f"1-based (original release): cop 4 in {four} of {labelled} rows, never 0",
        }
    if not medmcqa_rows or not labelled:
        return {"cop_base": None, "cop_evidence": "no labelled MedMCQA rows (no 'opa' or no 'cop')"}
    if params.get("undecided_base") is not None:
        base = params["undecided_base"]
        return {"cop_base": base, "cop_evidence": f"undecided (only cop 1..3 seen); {base} assumed, labels unused"}
    counts = ", ".join(f"cop {k}: {seen[k]}" for k in sorted(k for k in seen if k is not None))
    hint = params.get("cop_base_hint") or "declare cop_base: 0 or 1"
    raise FormatError(
        f"cannot tell whether MedMCQA cop counts from 0 (hub copy) or 1 (original release): its {labelled} "
        f"labelled rows have {counts} and no cop 0 or 4; {hint}"
    )


def convert_medmcqa(row: Any, ctx: Context, line: int = 0) -> Item:
    row = lower_keys(row)
    question = field_text(row, "question")
    options = [field_text(row, name) for name in _MEDMCQA_OPTIONS]
    if row.get("cop") is None or (isinstance(row["cop"], str) and not row["cop"].strip()):
        raise RowError("missing_field", "missing field 'cop' (an unlabelled row)")
    base = ctx.params.get("cop_base")
    if base is None:
        raise RowError("missing_field", "no cop base: the file has no labelled MedMCQA rows")
    cop = _cop(row["cop"])
    if cop is None or not base <= cop < base + 4:
        raise RowError("answer_not_in_options", f"cop {row['cop']!r} is not in {base}..{base + 3} ({base}-based)")
    meta = {
        "topic": field_text(row, "topic_name", required=False) or None,
        "choice_type": row["choice_type"] if isinstance(row.get("choice_type"), str) else None,
    }
    return mcq_item(
        ctx, question, options, cop - int(base), line=line, explanation=field_text(row, "exp", required=False),
        id=optional_id(row.get("id")), subject=field_text(row, "subject_name", required=False) or ctx.subject,
        meta=meta, answer_key=row["cop"],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# PubMedQA: ori_pqal / ori_pqaa (labelled) and ori_pqau (unlabelled), keyed by PMID (the reader
# passes the key as `_key`); or the hub layout (pubid, question, context {contexts}, long_answer)


def convert_pubmedqa(row: Any, ctx: Context, line: int = 0) -> Item:
    row = lower_keys(row)
    question = field_text(row, "question")
    name = "contexts" if "contexts" in row else "context"
    contexts = row.get(name)
    if isinstance(contexts, dict):
        contexts = contexts.get("contexts")
    if isinstance(contexts, str):
        contexts = [contexts]
    if not isinstance(contexts, list) or not contexts:
        raise RowError("missing_field", f"missing field '{name}' (a list of abstract paragraphs)")
    context = "\n".join(text(c, name) for c in contexts)
    long_answer = field_text(row, "long_answer", required=False)
    pmid = optional_id(row.get("_key", row.get("pmid", row.get("pubid"))))
    decision = row.get("final_decision")
    if decision is None or (isinstance(decision, str) and not decision.strip()):
        if not long_answer:
            raise RowError("missing_field", "neither 'final_decision' nor 'long_answer': nothing to answer with")
        check_markup(question, context, long_answer)
        language = language_of(ctx, question, long_answer)
        return Item("qa", question, context=context, language=language, line=line, id=pmid, answer_text=long_answer,
                    subject=ctx.subject)  # fmt: skip
    decision = text(decision, "final_decision")
    return yes_no_maybe_item(
        ctx, question, pubmedqa_label(decision), decision, context=context, line=line, explanation=long_answer, id=pmid
    )


# ---------------------------------------------------------------------------------------------
# MMLU: headerless CSV question,A,B,C,D,answer (English or Arabic, the answer letter Latin or
# Arabic); or the hub layouts: cais/mmlu {question, choices, answer 0-3} and {question, a..d, answer}

MMLU_HEADER = ["question", "a", "b", "c", "d", "answer"]


def convert_mmlu_csv(row: Any, ctx: Context, line: int = 0) -> Item:
    if isinstance(row, dict):
        row = lower_keys(row)
        question = field_text(row, "question")
        if "choices" in row:
            choices = row["choices"]
            if not isinstance(choices, list):
                raise RowError("bad_options", "field 'choices' must be a list of options")
            options = [text(c, f"choices[{i}]") for i, c in enumerate(choices)]
        else:
            options = [field_text(row, c) for c in "abcd"]
        key = row.get("answer")
        subject = row["subject"] if isinstance(row.get("subject"), str) and row["subject"] else None
    else:
        if not isinstance(row, list) or len(row) != 6:
            count = len(row) if isinstance(row, list) else "no"
            raise RowError("column_count", f"expected 6 columns (question,A,B,C,D,answer), got {count}")
        if [c.strip().lower() for c in row] == MMLU_HEADER:
            raise RowError("header_row", "a header row (question,A,B,C,D,answer); MMLU files have none")
        question = text(row[0], "question (column 1)")
        options = [text(cell, f"option {'ABCD'[i]} (column {i + 2})") for i, cell in enumerate(row[1:5])]
        key = text(row[5], "answer (column 6)")
        subject = None
    return mcq_item(ctx, question, options, letter_key(key, len(options)), line=line, subject=subject, answer_key=key)


# ---------------------------------------------------------------------------------------------
# The normalised MCQ (Apollo / XMedBench, and what the LLM stages write):
# {question, options "(A) ..\n(B) ..", answer "(A)", context?, source?, id?, explanation?, language?}


def _cell_line(field: str, number: int, line: str) -> str:
    return f"line {number} of field '{field}' ({' '.join(line.split())[:40]!r})"


def parse_option_block(block: str) -> list[str]:
    """'(A) first\\n(B) second' -> ['first', 'second']; a line without a label continues the option above.

    Labels are the letter table's (bimedix.mcq: Latin, or Arabic with هـ for the fifth), bracketed. A
    bracketed label that is not the next letter (a letter skipped or repeated, one the table lacks) is
    refused naming its line within the field: the options cannot be told apart, and are never merged.
    """
    options: list[str] = []
    script = None
    for number, line in enumerate(arabic.strip_invisible(block).split("\n"), 1):
        label = option_label(line)
        if label is not None and label.bracketed:
            expected = len(options)
            if label.position != expected or (script is not None and label.script != script):
                shown = LABELS[script or "latin"][expected] if expected < len(LABELS[script or "latin"]) else "?"
                raise RowError(
                    "bad_options",
                    f"option labels not in order: {_cell_line('options', number, line)} is labelled "
                    f"{label.token!r} where ({shown}) was due; the options cannot be told apart",
                )
            script = label.script
            options.append(label.text.rstrip())
        elif options and line.strip():
            options[-1] = f"{options[-1]}\n{line.rstrip()}"
        elif line.strip():
            raise RowError("bad_options", "field 'options' must be lines '(A) ...', one per option")
    if not options:
        raise RowError("bad_options", "field 'options' has no '(A) ...' lines")
    return options


def _row_language(row: dict) -> str | None:
    value = row.get("language")
    if value is None or value == "":
        return None
    if value not in ("en", "ar"):
        raise RowError("bad_type", f"field 'language' must be 'en' or 'ar', got {value!r}")
    return value


def convert_mcq_json(row: Any, ctx: Context, line: int = 0) -> Item:
    row = lower_keys(row)
    question = field_text(row, "question")
    block = row.get("options")
    options = parse_option_block(text(block, "options")) if isinstance(block, str) else _options_field(block)
    key = row.get("answer", row.get("answer_idx"))
    if key is None:
        raise RowError("missing_field", "missing field 'answer'")
    index = letter_key(key, len(options)) if len(options) <= MAX_OPTIONS else None
    origin = row["source"] if isinstance(row.get("source"), str) else None
    meta = {"origin": origin, "language": _row_language(row)}
    return mcq_item(
        ctx, question, options, index, line=line, context=field_text(row, "context", required=False),
        explanation=field_text(row, "explanation", required=False, aliases=("exp",)), id=optional_id(row.get("id")),
        meta=meta, answer_key=key,
    )  # fmt: skip


def as_yes_no_maybe(item: Item) -> Item | None:
    """A PubMedQA question written as a normalised MCQ ((A) Yes (B) No (C) Maybe, any order) as a
    yes / no / maybe item; None when its options are not exactly those labels."""
    if item.yes_no_maybe:
        return item
    labels = [pubmedqa_label(option) for option in item.options]
    if None in labels or sorted(labels) != [0, 1, 2]:
        return None
    return Item("mcq", item.question, PUBMEDQA_LABELS[item.language], labels[item.answer], item.context, item.language,
                item.line, item.id, explanation=item.explanation, subject=item.subject, yes_no_maybe=True,
                meta=item.meta)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Open QA and chats (JSON lines)


def convert_qa_jsonl(row: Any, ctx: Context, line: int = 0) -> Item:
    row = lower_keys(row)
    question = field_text(row, "question")
    answer = field_text(row, "answer")
    context = field_text(row, "context", required=False)
    check_markup(question, context)
    language = language_of(ctx, question, answer)
    return Item("qa", question, context=context, language=language, line=line, id=optional_id(row.get("id")),
                answer_text=answer, subject=ctx.subject, meta={"language": _row_language(row)})  # fmt: skip


def convert_chat_jsonl(row: Any, ctx: Context, line: int = 0) -> Item:
    """{messages: [{role, content}]}: an optional first system message, then user / assistant turns
    alternating, from the user, ending with the assistant. The language is the first user turn's."""
    row = lower_keys(row)
    turns = row.get("messages")
    if not isinstance(turns, list) or not turns:
        raise RowError("missing_field", "missing field 'messages' (a list of {role, content})")
    messages: list[dict[str, str]] = []
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
        messages.append({"role": role, "content": text(turn["content"], f"messages[{i}].content")})
    if messages[-1]["role"] != "assistant":
        raise RowError("bad_messages", "the last message must be the assistant's")
    users = [m["content"] for m in messages if m["role"] == "user"]
    check_markup(*users)
    language = language_of(ctx, users[0], "\n".join(users))
    return Item("chat", users[0], language=language, line=line, id=optional_id(row.get("id")),
                messages=tuple(messages), subject=ctx.subject, meta={"language": _row_language(row)})  # fmt: skip


# ---------------------------------------------------------------------------------------------
# MedArabiQ multiple-choice CSV (nyuad-cai/MedArabiQ, multiple-choice-questions.csv): a header
# Question,Answer,Category; Question holds the stem, then the options on their own lines lettered
# أ. ب. ج. د. (sometimes ه. or هـ.); Answer holds the full text of the correct option, letter included.

_MEDARABIQ_SCRIPTS = ("arabic", "number")  # its labels: Arabic letters (أ. .. هـ.), or numbers


def split_arabic_options(block: str, field: str = "Question") -> tuple[str, list[str]]:
    """'stem\\nأ. x\\nب. y' -> ('stem', ['x', 'y']); a line after an option without a label continues it.

    Labels are the letter table's (bimedix.mcq.option_label: أ ب ج د ه/هـ و, or numbers, with . ) - :
    or Arabic punctuation), in order from the first. A run of labels of another kind before the options
    (a stem's numbered statements) stays in the stem. A line after the first option that opens with a
    label but not the next one (a letter skipped, repeated or unknown to the table) is refused naming
    the line: the options cannot be told apart, so they are never merged.
    """
    stem: list[str] = []
    options: list[str] = []
    raw: list[str] = []  # the lines of the options so far, as written
    script = None
    for number, line in enumerate(arabic.strip_invisible(block).replace("\r\n", "\n").split("\n"), 1):
        label = option_label(line)
        if label is not None and label.script not in _MEDARABIQ_SCRIPTS:
            label = None  # "E. coli" opening a line is text
        if label is not None and label.position == 0 and options and label.script != script:
            stem += raw  # the lines read as options were the stem's own numbered list
            options, raw = [], []
        if label is not None and label.position == len(options) and (not options or label.script == script):
            script = label.script
            options.append(label.text.strip())
            raw.append(line)
        elif options and label is not None:
            due = LABELS["arabic"][len(options)] if len(options) < len(LABELS["arabic"]) else "?"
            raise RowError(
                "bad_options",
                f"option labels not in order: {_cell_line(field, number, line)} opens with label "
                f"{label.token!r} where {due if script == 'arabic' else len(options) + 1} was due; the options "
                "cannot be told apart",
            )
        elif options and line.strip():
            options[-1] = f"{options[-1]}\n{line.strip()}"
            raw.append(line)
        elif not options:
            stem.append(line)
    return "\n".join(stem).strip(), options


def convert_medarabiq_csv(row: Any, ctx: Context, line: int = 0) -> Item:
    row = lower_keys(row)
    block = field_text(row, "question")
    answer = field_text(row, "answer")
    stem, options = split_arabic_options(block)
    if not stem:
        raise RowError("missing_field", "field 'Question' has no question before its options")
    if len(options) < 2:
        raise RowError("bad_options", f"field 'Question' has {len(options)} lettered options (أ. ب. ج. د.)")
    label = option_label(answer.strip())
    if label is not None and label.script not in _MEDARABIQ_SCRIPTS:
        label = None
    by_text = _answer_by_text(label.text if label else answer, options)
    if label:
        index = label.position
        if index is not None and index < len(options) and by_text not in (None, index):
            raise RowError(
                "answer_mismatch", f"answer {answer[:60]!r} names option {label.token} but has another option's text"
            )
        if index is not None and index < len(options) and by_text is None and label.text.strip():
            raise RowError("answer_mismatch", f"answer {answer[:60]!r} is not the text of option {label.token}")
    else:
        index = by_text
    category = field_text(row, "category", required=False) or None
    return mcq_item(ctx, stem, options, index, line=line, subject=category or ctx.subject, answer_key=answer)
