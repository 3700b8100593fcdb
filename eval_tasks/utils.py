"""Prompt, choice, dataset and scoring functions of the bimedix_* lm-eval tasks (`!function utils.x`).

lm-eval executes this file afresh for every `!function` it resolves, so it keeps no state of its own:
settings come from eval_tasks/prompts/layouts.yaml through eval_tasks.registry (imported once), and
data loading lives in eval_tasks.data (which reads every file through bimedix.formats).

A doc (eval_tasks.data.to_docs) is {id, question, choices, answer, context, benchmark, language}:
`choices` holds the option texts (MCQ) or the yes/no/maybe labels (PubMedQA), `answer` indexes it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import eval_tasks  # noqa: F401
except ImportError:  # run by lm-eval's own CLI without the repository on PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bimedix.arabic import fold as normalise
from bimedix.mcq import OPTION_LETTERS, PUBMEDQA_LABELS, label_position
from eval_tasks import registry


def _is_pubmedqa(doc: dict) -> bool:
    return registry.benchmark(doc["benchmark"]).kind == "pubmedqa"


def option_letters(doc: dict) -> list[str]:
    return list(OPTION_LETTERS[doc["language"]][: len(doc["choices"])])


def doc_to_text(doc: dict) -> str:
    """The prompt: the layout of the doc's benchmark and language in prompts.yaml."""
    settings = registry.prompts()[doc["language"]]
    layout = registry.benchmark(doc["benchmark"]).layout
    question = doc["question"].strip() if layout in settings["strip_question"] else doc["question"]
    options = ""
    if not _is_pubmedqa(doc):
        options = "".join(
            settings["option"].format(letter=letter, text=text)
            for letter, text in zip(option_letters(doc), doc["choices"], strict=True)
        )
    return settings["layouts"][layout].format(question=question, options=options, context=doc["context"])


def doc_to_choice(doc: dict) -> list[str]:
    """What is scored: the option letters (A B C D / أ ب ج د), or PubMedQA's labels in the doc's language."""
    return list(doc["choices"]) if _is_pubmedqa(doc) else option_letters(doc)


def doc_to_text_generative(doc: dict) -> str:
    """The generative variant's prompt: an instruction line, a blank line, then the usual prompt."""
    instructions = registry.prompts()[doc["language"]]["generative_instruction"]
    instruction = instructions["pubmedqa" if _is_pubmedqa(doc) else "mcq"]
    return f"{instruction}\n\n{doc_to_text(doc)}"


def doc_to_target_generative(doc: dict) -> str:
    return doc_to_choice(doc)[doc["answer"]]


# -- answer extraction for the generative variant --------------------------------------------------

_AR = "\u0621-\u064a\u0671-\u06d3"  # Arabic letters, not Arabic punctuation (، ؛ ؟)
_LETTER = rf"([A-E]|[{_AR}]|[1-5])"  # capitals only: a lower-case "a" is an article, not an option
_NOT_WORD = rf"(?![\w{_AR}])"
_CUES = [
    # "The answer is B", "Answer: (C)", "option 2", "الإجابة: ب", "الجواب الصحيح هو (ب)", "الخيار ٢"
    re.compile(
        r"(?:(?i:answer(?:\s+is)?|option|choice)|الاجابه(?:\s+الصحيحه)?(?:\s+هي)?|الجواب(?:\s+الصحيح)?(?:\s+هو)?"
        rf"|الخيار(?:\s+الصحيح)?(?:\s+هو)?)\s*[:\-]?\s*\(?\s*{_LETTER}{_NOT_WORD}"
    ),
    re.compile(r"^\W*\(?\s*([A-E])\s*(?:[).:]|$)"),  # "B", "B.", "(B) Kidney", "B) Kidney"
    re.compile(rf"^\W*\(?\s*([{_AR}])\s*(?:[).:،]|\s|$)"),  # "ب", "ب. الكلى", "ب الكلى"
    re.compile(rf"\(\s*([A-E]|[{_AR}])\s*\)"),  # "(B)" or "(ب)" anywhere
]


def _choice_index(token: str, language: str, n: int) -> int | None:
    """A label the reply names -> the option index, through the one letter table (bimedix.mcq)."""
    index, script = label_position(token)
    if index is None or script == "other" or (script == "arabic" and language != "ar"):
        return None
    return index if 0 <= index < n else None


def extract_answer(text: str, doc: dict) -> int | None:
    """The choice a generated answer names, or None when it names none.

    MCQ: a letter after a cue ("Answer: B", "الإجابة: ب"), a letter opening the reply, or a bracketed
    letter; Arabic tasks accept Arabic and Latin letters. Failing that, the one option whose text the
    reply contains. PubMedQA: the first yes / no / maybe label (English or Arabic) standing as a word.
    Tolerant to tatweel, diacritics, hamza forms, direction marks and Arabic-Indic digits.
    """
    reply = normalise(text, casefold=False)
    if not reply:
        return None
    if _is_pubmedqa(doc):
        first: tuple[int, int] | None = None
        for labels in PUBMEDQA_LABELS.values():
            for i, label in enumerate(labels):
                match = re.search(rf"(?<![\w{_AR}]){re.escape(normalise(label))}{_NOT_WORD}", reply.casefold())
                if match and (first is None or match.start() < first[0]):
                    first = (match.start(), i)
        return first[1] if first else None
    for pattern in _CUES:
        match = pattern.search(reply)
        if match:
            index = _choice_index(match.group(1), doc["language"], len(doc["choices"]))
            if index is not None:
                return index
    folded = reply.casefold()
    named = [i for i, option in enumerate(doc["choices"]) if normalise(option) and normalise(option) in folded]
    return named[0] if len(named) == 1 else None


def process_results_generative(doc: dict, results: list[str]) -> dict[str, int]:
    """acc: the extracted choice is the answer; answered: some choice could be extracted at all."""
    picked = extract_answer(results[0], doc)
    return {"acc": int(picked == doc["answer"]), "answered": int(picked is not None)}


# -- the dataset -----------------------------------------------------------------------------------


def load_benchmark(
    benchmark: str,
    language: str,
    eval_data: str | None = None,
    eval_data_root: str | None = None,
    max_rejected_share: float | None = None,
    max_repeated_share: float | None = None,
    **_,
):
    """lm-eval's `custom_dataset`: the task's docs from the source EVAL_DATA names, as split "test".

    `benchmark` and `language` come from the task's dataset_kwargs; `eval_data` and `eval_data_root`
    from lm-eval's metadata (`--metadata '{"eval_data": "hub"}'`), else the environment variables
    BIMEDIX_EVAL_DATA and BIMEDIX_EVAL_DATA_ROOT. Neither is an error: plain lm-eval never falls back
    to the synthetic sample silently. The audit's limits (eval_tasks/settings.yaml) may be overridden
    by the metadata keys max_rejected_share / max_repeated_share. Other metadata is ignored.
    """
    import datasets

    from bimedix.audit import Gate
    from eval_tasks import data

    task = registry.TaskId(language, benchmark, False)
    source = data.resolve_source(eval_data, eval_data_root, default=None)
    items, report = data.load_records(task, source)
    default = data.default_gate()
    gate = Gate(
        default.max_rejected_share if max_rejected_share is None else float(max_rejected_share),
        default.max_repeated_share if max_repeated_share is None else float(max_repeated_share),
    )
    data.refuse(data.gate_problems(report, gate), flags="metadata max_rejected_share / max_repeated_share")
    if source.kind == "sample":
        data.warn(data.SAMPLE_WARNING)
    for line in data.audit_lines(report):
        data.warn(f"{task.data_name}: audit: {line}")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(data.to_docs(items, task))})
