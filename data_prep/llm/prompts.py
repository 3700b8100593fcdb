"""Prompts are data: prompts/*.yaml, each a `system` and a `user` Jinja2 template (StrictUndefined)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
import yaml

from data_prep.llm.config import ConfigError, resolve_data_path

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class Prompt:
    path: Path
    system: jinja2.Template
    user: jinja2.Template
    sha256: str

    def messages(self, **variables) -> list[dict[str, str]]:
        try:
            return [
                {"role": "system", "content": self.system.render(**variables).strip()},
                {"role": "user", "content": self.user.render(**variables).strip()},
            ]
        except jinja2.UndefinedError as err:
            raise ConfigError(f"{self.path}: {err}") from None


@cache
def load_prompt(relative: str) -> Prompt:
    path = resolve_data_path(relative)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt file not found") from None
    data = yaml.safe_load(raw.decode("utf-8"))
    if not isinstance(data, dict) or set(data) != {"system", "user"}:
        raise ConfigError(f"{path}: a prompt file holds exactly the keys system and user")
    try:
        system, user = _ENV.from_string(data["system"]), _ENV.from_string(data["user"])
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{path}: template error at line {err.lineno}: {err.message}") from None
    return Prompt(path, system, user, hashlib.sha256(raw).hexdigest())
