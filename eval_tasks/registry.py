"""The benchmarks, task names and settings of the eval stage, read once from its YAML files:

eval_tasks/settings.yaml            run-wide defaults (the audit's limits)
eval_tasks/benchmarks.yaml          the benchmarks: task names, columns, option counts, languages
eval_tasks/hub_sources.yaml         where EVAL_DATA=hub reads each task
eval_tasks/reference_results.yaml   the published BiMediX tables
eval_tasks/prompts/layouts.yaml     the prompt layouts per language
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SAMPLE_INDEX = HERE / "sample_data" / "index.yaml"
HUB_SOURCES = "eval_tasks/hub_sources.yaml"
PREFIX = "bimedix"
LANGUAGES = ("en", "ar")
LANGUAGE_NAMES = {"en": "English", "ar": "Arabic"}
GENERATIVE_SUFFIX = "_gen"


@dataclass(frozen=True)
class Benchmark:
    benchmark: str  # the name inside task names: bimedix_<language>_<benchmark>
    column: str  # the column header in the tables
    layout: str  # the prompt layout in prompts/layouts.yaml
    builtin: str | None  # lm-eval's English task with the same prompts (None: no such task)
    kind: str  # "mcq" or "pubmedqa"
    options: tuple[int, ...]  # the option counts its tasks score; a row with another count is not scored
    languages: tuple[str, ...] = LANGUAGES
    paper: bool = True  # one of the paper's nine columns (in the AVG); False: reported beside them
    local_only: bool = False  # no hub source: a user's own copy only (its licence forbids redistribution)


def _read(name: str):
    return yaml.safe_load((HERE / name).read_text(encoding="utf-8"))


@cache
def benchmarks() -> tuple[Benchmark, ...]:
    out = []
    for entry in _read("benchmarks.yaml"):
        entry = dict(entry)
        entry["options"] = tuple(entry["options"])
        entry["languages"] = tuple(entry.get("languages", LANGUAGES))
        out.append(Benchmark(**entry))
    return tuple(out)


def paper_benchmarks() -> tuple[Benchmark, ...]:
    """The paper's nine, in its column order."""
    return tuple(b for b in benchmarks() if b.paper)


@cache
def benchmark(name: str) -> Benchmark:
    for bench in benchmarks():
        if bench.benchmark == name:
            return bench
    raise KeyError(name)


@cache
def settings() -> dict:
    return _read("settings.yaml")


@cache
def prompts() -> dict:
    return _read("prompts/layouts.yaml")


@cache
def hub_sources() -> dict:
    return _read("hub_sources.yaml")


@cache
def references() -> dict:
    return _read("reference_results.yaml")


def task_name(language: str, bench: str, generative: bool = False) -> str:
    return f"{PREFIX}_{language}_{bench}{GENERATIVE_SUFFIX if generative else ''}"


@dataclass(frozen=True)
class TaskId:
    language: str
    benchmark: str
    generative: bool

    @property
    def data_name(self) -> str:
        """The name data sources use for this task: the log-likelihood task's (the *_gen variant shares its data)."""
        return task_name(self.language, self.benchmark)


@cache
def all_tasks(generative: bool | None = False) -> tuple[str, ...]:
    """Every task name, in language then column order (both variants when generative is None)."""
    variants = (False, True) if generative is None else (generative,)
    return tuple(
        task_name(lang, bench.benchmark, gen)
        for gen in variants
        for lang in LANGUAGES
        for bench in benchmarks()
        if lang in bench.languages
    )


def parse_task(name: str) -> TaskId:
    """bimedix_ar_medqa_gen -> TaskId('ar', 'medqa', True); KeyError for a name that is not ours."""
    for gen in (False, True):
        for bench in benchmarks():
            for lang in bench.languages:
                if task_name(lang, bench.benchmark, gen) == name:
                    return TaskId(lang, bench.benchmark, gen)
    raise KeyError(name)


def groups() -> dict[str, list[str]]:
    """The lm-eval groups of this stage and the tasks (or groups) each holds: the paper's nine per language."""
    out: dict[str, list[str]] = {}
    for gen in (False, True):
        suffix = GENERATIVE_SUFFIX if gen else ""
        for lang in LANGUAGES:
            out[f"{PREFIX}_{lang}{suffix}"] = [task_name(lang, b.benchmark, gen) for b in paper_benchmarks()]
        out[f"{PREFIX}_bilingual{suffix}"] = [f"{PREFIX}_{lang}{suffix}" for lang in LANGUAGES]
    return out
