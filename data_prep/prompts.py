"""Instruction phrasings, loaded from data_prep/prompts/*.yaml and checked when they load."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import xxhash
import yaml

from bimedix.mcq import option_letters
from data_prep.records import DataPrepError

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

_MCQA_FIELDS = {
    "option": {"letter", "text"},
    "context": {"text"},
    "explanation": {"text"},
    "user": {"context", "question", "options"},
    "assistant": {"letter", "answer", "explanation"},
}
_QA_FIELDS = {"context": {"text"}, "user": {"context", "question"}}


def _check(template: object, allowed: set[str], where: str) -> str:
    if not isinstance(template, str):
        raise DataPrepError(f"{where}: expected a string")
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise DataPrepError(f"{where}: {err}") from None
    unknown = used - allowed
    if unknown or "" in used:
        raise DataPrepError(f"{where}: unknown placeholder {sorted(unknown)} (allowed: {sorted(allowed)})")
    return template


@dataclass(frozen=True)
class Phrasing:
    id: str
    user: str
    assistant: str


@dataclass(frozen=True)
class McqaStyle:
    option: str
    context: str
    explanation: str
    phrasings: tuple[Phrasing, ...]


@dataclass(frozen=True)
class QaStyle:
    context: str
    user: str


@dataclass(frozen=True)
class Prompts:
    mcqa: dict[str, McqaStyle]
    qa: dict[str, QaStyle]

    def render_mcqa(
        self,
        language: str,
        question: str,
        options: list[str],
        answer: int,
        *,
        context: str | None,
        explanation: str | None,
        seed: int,
    ) -> tuple[str, str, str]:
        """(user, assistant, phrasing id) for one multiple-choice question."""
        style = self.mcqa[language]
        letters = option_letters(language, len(options))
        phrasing = style.phrasings[
            xxhash.xxh64_intdigest(f"{seed}\x1f{question}".encode("utf-8", "surrogatepass")) % len(style.phrasings)
        ]
        lines = "\n".join(
            style.option.format(letter=letter, text=text) for letter, text in zip(letters, options, strict=True)
        )
        user = phrasing.user.format(
            context=style.context.format(text=context) if context else "", question=question, options=lines
        )
        assistant = phrasing.assistant.format(
            letter=letters[answer],
            answer=options[answer],
            explanation=style.explanation.format(text=explanation) if explanation else "",
        )
        return user, assistant, phrasing.id

    def render_qa(self, language: str, question: str, context: str | None) -> str:
        style = self.qa[language]
        return style.user.format(context=style.context.format(text=context) if context else "", question=question)


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DataPrepError(f"{path}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict) or set(data) != {"en", "ar"}:
        raise DataPrepError(f"{path}: expected exactly the languages 'en' and 'ar' at the top level")
    return data


def load_prompts(directory: Path = PROMPTS_DIR) -> Prompts:
    mcqa_path, qa_path = directory / "mcqa.yaml", directory / "qa.yaml"
    mcqa, qa = {}, {}
    for language, spec in _load_yaml(mcqa_path).items():
        where = f"{mcqa_path}: {language}"
        if not isinstance(spec, dict) or set(spec) != {"option", "context", "explanation", "phrasings"}:
            raise DataPrepError(f"{where}: expected the keys option, context, explanation, phrasings")
        phrasings = []
        for i, item in enumerate(spec["phrasings"] or []):
            if not isinstance(item, dict) or set(item) != {"id", "user", "assistant"}:
                raise DataPrepError(f"{where}.phrasings[{i}]: expected the keys id, user, assistant")
            phrasings.append(
                Phrasing(
                    str(item["id"]),
                    _check(item["user"], _MCQA_FIELDS["user"], f"{where}.phrasings[{i}].user"),
                    _check(item["assistant"], _MCQA_FIELDS["assistant"], f"{where}.phrasings[{i}].assistant"),
                )
            )
        if not phrasings:
            raise DataPrepError(f"{where}: no phrasings")
        mcqa[language] = McqaStyle(
            *(_check(spec[k], _MCQA_FIELDS[k], f"{where}.{k}") for k in ("option", "context", "explanation")),
            phrasings=tuple(phrasings),
        )
    for language, spec in _load_yaml(qa_path).items():
        where = f"{qa_path}: {language}"
        if not isinstance(spec, dict) or set(spec) != {"context", "user"}:
            raise DataPrepError(f"{where}: expected the keys context, user")
        qa[language] = QaStyle(*(_check(spec[k], _QA_FIELDS[k], f"{where}.{k}") for k in ("context", "user")))
    return Prompts(mcqa, qa)


@lru_cache(maxsize=1)
def default_prompts() -> Prompts:
    return load_prompts(PROMPTS_DIR)
