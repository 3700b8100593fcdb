"""Settings (data_prep/settings.yaml) and mixes (data_prep/mixes/*.yaml), parsed strictly.

A key that is not known, a value of the wrong type or a source that cannot be found is a
`DataPrepError` naming the file and the key, before any work starts.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bimedix.formats import SourceFile
from bimedix.paths import ROOT
from data_prep.records import LANGUAGES, DataPrepError
from data_prep.sources import get_format

SETTINGS_PATH = Path(__file__).resolve().parent / "settings.yaml"
MIXES_DIR = Path(__file__).resolve().parent / "mixes"


def display(path: Path) -> str:
    """A path as people should read it: relative to the repository when inside it."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _at(where: str, key: object) -> str:
    """'mix.yaml' + 'sources' -> 'mix.yaml: sources'; 'mix.yaml: sources[0]' + 'path' -> '...sources[0].path'."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, where)
            except DataPrepError as err:
                errors.append(err)
        raise errors[0]
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise DataPrepError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {_check_type(k, key_type, where): _check_type(v, value_type, _at(where, k)) for k, v in value.items()}
    if origin is tuple:
        (item_type, _) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise DataPrepError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_check_type(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(annotation):
        return from_mapping(annotation, value, where)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise DataPrepError(f"{where}: expected a number, got {value!r}")
    if not isinstance(value, annotation):
        raise DataPrepError(f"{where}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_mapping(cls: type, data: Any, where: str):
    """Build dataclass `cls` from YAML data, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise DataPrepError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DataPrepError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    values = {}
    for name, spec in known.items():
        if name in data:
            values[name] = _check_type(data[name], hints[name], _at(where, name))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise DataPrepError(f"{where}: missing key {name!r}")
    return cls(**values)


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataPrepError(f"{display(path)}: no such file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise DataPrepError(f"{display(path)}{at}: invalid YAML ({getattr(err, 'problem', None) or err})") from None


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class LanguageSettings:
    min_arabic_share: float = 0.3


@dataclass(frozen=True)
class DedupSettings:
    near: bool = True
    shingle: int = 5
    num_perm: int = 64
    bands: int = 8


@dataclass(frozen=True)
class DecontaminationSettings:
    ngram: int = 13
    min_coverage: float = 0.1


@dataclass(frozen=True)
class HistogramSettings:
    bins: int = 60


@dataclass(frozen=True)
class AuditSettings:
    max_rejected_share: float = 0.1
    max_repeated_share: float = 0.05


@dataclass(frozen=True)
class Settings:
    tokenizer: str | None = None
    eval_data: str = "sample"
    out_dir: str | None = None
    workers: int = 0
    batch_rows: int = 2000
    language: LanguageSettings = field(default_factory=LanguageSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    decontamination: DecontaminationSettings = field(default_factory=DecontaminationSettings)
    histogram: HistogramSettings = field(default_factory=HistogramSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    def __post_init__(self):
        where = display(SETTINGS_PATH)
        if self.batch_rows < 1 or self.workers < 0:
            raise DataPrepError(f"{where}: batch_rows must be >= 1 and workers >= 0")
        if self.dedup.num_perm % self.dedup.bands or self.dedup.shingle < 1:
            raise DataPrepError(f"{where}: dedup.num_perm must be a multiple of dedup.bands, shingle >= 1")
        if not 0 <= self.decontamination.min_coverage <= 1 or self.decontamination.ngram < 1:
            raise DataPrepError(f"{where}: decontamination.min_coverage must be in [0, 1], ngram >= 1")
        if not (0 <= self.audit.max_rejected_share <= 1 and 0 <= self.audit.max_repeated_share <= 1):
            raise DataPrepError(f"{where}: audit.max_rejected_share and audit.max_repeated_share must be in [0, 1]")


def load_settings(path: Path = SETTINGS_PATH) -> Settings:
    return from_mapping(Settings, load_yaml(path) or {}, display(path))


# ---------------------------------------------------------------------------------------------
# Mixes


@dataclass(frozen=True)
class SourceSpec:
    name: str
    format: str
    path: str | None = None  # a file or a glob, relative to the mix file's folder; $VARS expand
    hub: str | None = None  # a hub dataset id (or a local dataset folder), read with datasets
    split: str | None = None  # hub split (default train)
    config: str | None = None  # hub configuration name
    language: str | None = None  # en or ar: a row written in the other script is rejected
    weight: float = 1.0  # < 1 keeps that share of the records, > 1 repeats them in train
    subject: str | None = None
    explanations: bool = True
    cop_base: int | None = None  # medmcqa only: 0 or 1; default detect (bimedix/formats, probe_medmcqa)


@dataclass(frozen=True)
class Mix:
    name: str
    sources: tuple[SourceSpec, ...]
    description: str = ""
    seed: int = 0
    val_fraction: float = 0.05
    # e.g. {ar: 1, en: 2}: the larger side is subsampled (by the seed) to this ratio of records
    language_ratio: dict[str, float] | None = None
    # prepend the project's system message (templates/system_message.txt) to every conversation
    system_message: bool = False
    path: Path = field(default=Path(), init=False, compare=False)


_UNSET_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def load_mix(path: Path) -> Mix:
    where = display(path)
    mix = from_mapping(Mix, load_yaml(path), where)
    object.__setattr__(mix, "path", Path(os.path.abspath(path)))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", mix.name):
        raise DataPrepError(f"{where}: name {mix.name!r} must be a plain folder name (letters, digits, _ . -)")
    if not mix.sources:
        raise DataPrepError(f"{where}: no sources")
    if not 0 <= mix.val_fraction < 1:
        raise DataPrepError(f"{where}: val_fraction must be in [0, 1)")
    names = set()
    for i, spec in enumerate(mix.sources):
        at = f"{where}: sources[{i}] ({spec.name})"
        if spec.name in names:
            raise DataPrepError(f"{at}: the name is used twice")
        names.add(spec.name)
        try:
            fmt = get_format(spec.format)
        except DataPrepError as err:
            raise DataPrepError(f"{at}: {err}") from None
        if (spec.path is None) == (spec.hub is None):
            raise DataPrepError(f"{at}: give exactly one of 'path' and 'hub'")
        if spec.language is not None and spec.language not in LANGUAGES:
            raise DataPrepError(f"{at}: language must be one of {', '.join(LANGUAGES)}")
        if not spec.weight > 0:
            raise DataPrepError(f"{at}: weight must be > 0")
        if spec.cop_base is not None and ("cop_base" not in fmt.params or spec.cop_base not in (0, 1)):
            raise DataPrepError(f"{at}: cop_base (0 or 1) applies to the medmcqa format only")
    if mix.language_ratio is not None:
        bad = set(mix.language_ratio) - set(LANGUAGES)
        if bad or len(mix.language_ratio) < 2 or any(v <= 0 for v in mix.language_ratio.values()):
            raise DataPrepError(f"{where}: language_ratio needs positive shares for {' and '.join(LANGUAGES)}")
    return mix


def source_files(spec: SourceSpec, mix: Mix) -> list[SourceFile]:
    """The inputs one mix entry names: a file, the files a glob matches, or a hub dataset."""
    where = f"{display(mix.path)}: source {spec.name}"
    base = mix.path.parent
    if spec.hub is not None:
        local = base / spec.hub
        if local.is_dir():
            return [SourceFile(f"{display(local)}[{spec.split or 'train'}]", hub=str(local), split=spec.split)]
        label = f"hf://{spec.hub}" + (f"/{spec.config}" if spec.config else "") + f"[{spec.split or 'train'}]"
        return [SourceFile(label, hub=spec.hub, config=spec.config, split=spec.split)]
    expanded = os.path.expandvars(spec.path)
    unset = _UNSET_VAR.search(expanded)
    if unset:
        raise DataPrepError(f"{where}: path {spec.path!r} uses ${unset.group(1)}, which is not set")
    pattern = Path(expanded).expanduser()
    pattern = pattern if pattern.is_absolute() else base / pattern
    if glob.has_magic(str(pattern)):
        paths = sorted(Path(p) for p in glob.glob(str(pattern)))
        if not paths:
            raise DataPrepError(f"{where}: no file matches {display(pattern)}")
    else:
        paths = [pattern]
    files = [SourceFile(display(p), path=p) for p in paths]
    for f in files:
        if not f.path.is_file():
            raise DataPrepError(f"{where}: {f.label}: no such file")
    return files
