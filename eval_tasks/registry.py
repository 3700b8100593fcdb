"""The benchmarks, task names and settings of the eval stage, read once from eval_tasks/config/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CONFIG_DIR = HERE / "config"
SAMPLE_INDEX = HERE / "sample_data" / "index.yaml"
PREFIX = "bimedix"
LANGUAGES = ("en", "ar")
LANGUAGE_NAMES = {"en": "English", "ar": "Arabic"}
GENERATIVE_SUFFIX = "_gen"


@dataclass(frozen=True)
class Benchmark:
    benchmark: str  # the name inside task names: bimedix_<language>_<benchmark>
    column: str  # the paper's column header
    layout: str  # the prompt layout in prompts.yaml
    builtin: str  # lm-eval's English task with the same prompts
    kind: str  # "mcq" or "pubmedqa"


def _read(name: str):
    return yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))


@cache
def benchmarks() -> tuple[Benchmark, ...]:
    return tuple(Benchmark(**entry) for entry in _read("benchmarks.yaml"))


@cache
def benchmark(name: str) -> Benchmark:
    for bench in benchmarks():
        if bench.benchmark == name:
            return bench
    raise KeyError(name)


@cache
def prompts() -> dict:
    return _read("prompts.yaml")


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
        task_name(lang, bench.benchmark, gen) for gen in variants for lang in LANGUAGES for bench in benchmarks()
    )


def parse_task(name: str) -> TaskId:
    """bimedix_ar_medqa_gen -> TaskId('ar', 'medqa', True); KeyError for a name that is not ours."""
    for gen in (False, True):
        for lang in LANGUAGES:
            for bench in benchmarks():
                if task_name(lang, bench.benchmark, gen) == name:
                    return TaskId(lang, bench.benchmark, gen)
    raise KeyError(name)


def groups() -> dict[str, list[str]]:
    """The lm-eval groups of this stage and the tasks (or groups) each holds."""
    out: dict[str, list[str]] = {}
    for gen in (False, True):
        suffix = GENERATIVE_SUFFIX if gen else ""
        for lang in LANGUAGES:
            out[f"{PREFIX}_{lang}{suffix}"] = [task_name(lang, b.benchmark, gen) for b in benchmarks()]
        out[f"{PREFIX}_bilingual{suffix}"] = [f"{PREFIX}_{lang}{suffix}" for lang in LANGUAGES]
    return out
