"""Recipe files: load YAML with the line of every key, merge overlays, apply overrides.

A recipe is an Axolotl YAML file. Everything here keeps track of where each key came from
(file and line), so that a problem is reported as `recipes/x.yaml:42: lora_rr: ...`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bimedix.paths import ROOT

KeyPath = tuple[str | int, ...]


class RecipeError(ValueError):
    """A recipe file cannot be read (missing, not YAML, not a mapping)."""


def rel(path: Path | str) -> str:
    """A path as the user should read it: relative to the repository root when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def format_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Recipe:
    """A recipe's content and, for every key path, the (file, line) it was written at."""

    data: dict[str, Any]
    origin: dict[KeyPath, tuple[str, int]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    # path prefixes a make target produces, beyond the registry's (a moved DATA_DIR)
    produced: dict[str, str] = field(default_factory=dict)

    def where(self, path: KeyPath) -> str:
        """`file:line` of the key (or of its closest written parent), else the recipe file."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.origin:
                file, line = self.origin[path[:end]]
                return f"{file}:{line}" if line else file
        return self.sources[0] if self.sources else "<recipe>"

    def copy(self) -> Recipe:
        return Recipe(copy.deepcopy(self.data), dict(self.origin), list(self.sources), dict(self.produced))


def _walk(node: yaml.Node, path: KeyPath, file: str, origin: dict[KeyPath, tuple[str, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            origin[key_path] = (file, key_node.start_mark.line + 1)
            _walk(value_node, key_path, file, origin)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            origin[(*path, index)] = (file, item.start_mark.line + 1)
            _walk(item, (*path, index), file, origin)


def load(path: Path | str) -> Recipe:
    """Read one YAML file (a recipe or an overlay). Raises RecipeError with a one-line reason."""
    path = Path(path)
    shown = rel(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{shown}: no such file") from None
    except OSError as err:
        raise RecipeError(f"{shown}: cannot read: {err.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark else shown
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{shown}: expected a mapping of Axolotl keys, got {type(data).__name__}")
    origin: dict[KeyPath, tuple[str, int]] = {}
    _walk(node, (), shown, origin)
    return Recipe(data, origin, [shown])


def merge(base: Recipe, overlay: Recipe) -> Recipe:
    """The overlay's keys replace the base's (mappings merge key by key, lists are replaced)."""
    out = base.copy()

    def _merge(into: dict, new: dict, path: KeyPath) -> None:
        for key, value in new.items():
            key_path = (*path, key)
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                _merge(into[key], value, key_path)
            else:
                into[key] = copy.deepcopy(value)
                for stale in [p for p in out.origin if p[: len(key_path)] == key_path]:
                    del out.origin[stale]
            out.origin.update({p: o for p, o in overlay.origin.items() if p[: len(key_path)] == key_path})

    _merge(out.data, overlay.data, ())
    out.sources.extend(overlay.sources)
    return out


def override(recipe: Recipe, key: str, value: Any, source: str = "<command line>") -> None:
    """Set a top-level key (from the command line or the Makefile); remembered as its origin."""
    recipe.data[key] = value
    for stale in [p for p in recipe.origin if p[:1] == (key,)]:
        del recipe.origin[stale]
    recipe.origin[(key,)] = (source, 0)


class _SetLoader(yaml.SafeLoader):
    """YAML for `--set` values, with YAML 1.2 booleans: only true/false are booleans.

    PyYAML follows YAML 1.1, where `no`, `off`, `yes`, `on`, `y` and `n` are booleans too:
    `--set eval_strategy=no` would become False, which Axolotl's schema refuses (and
    `--set save_strategy=no` the same). On the command line such a word means the word.
    """


_SetLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SetLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_assignment(text: str) -> tuple[str, Any]:
    """`key=value` from `--set`; the value is read as YAML (`3`, `true`, `[a, b]`, `text`),
    with YAML 1.2 booleans (`no` is the string "no", not False)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set {text!r}: expected key=value")
    try:
        value = yaml.load(raw, Loader=_SetLoader) if raw.strip() else None  # a SafeLoader
    except yaml.YAMLError:
        raise RecipeError(f"--set {text!r}: the value is not valid YAML") from None
    return key, value


def dump(recipe: Recipe, path: Path, header: str) -> None:
    """Write the resolved recipe Axolotl will run (comments are lost; the header says where from)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(recipe.data, sort_keys=False, allow_unicode=True, width=120)
    lines = [f"# {line}" for line in header.splitlines()]
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
