"""Settings (settings.yaml) and the endpoint (environment variables or --endpoint FILE.yaml).

Every key is checked: an unknown or mistyped key is an error naming the file and the key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SETTINGS_FILE = HERE / "settings.yaml"

ENV_BASE_URL = "BIMEDIX_LLM_BASE_URL"
ENV_MODEL = "BIMEDIX_LLM_MODEL"
ENV_API_KEY = "BIMEDIX_LLM_API_KEY"
ENV_ENDPOINT_FILE = "BIMEDIX_LLM_ENDPOINT"

HOW_TO_CONFIGURE = (
    f"set {ENV_BASE_URL} and {ENV_MODEL} (and {ENV_API_KEY} if the server wants a key), "
    "or pass --endpoint FILE.yaml (make: LLM_ENDPOINT=FILE.yaml; see data_prep/llm/endpoint.example.yaml)"
)


class ConfigError(ValueError):
    """A settings or endpoint problem, with the file and key in the message."""


@dataclass(frozen=True)
class ClientSettings:
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 8
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    chars_per_token: float = 3.0
    price_per_1k_input: float = 0.0
    price_per_1k_output: float = 0.0

    def __post_init__(self):
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be > 0 or null, got {value}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.chars_per_token <= 0:
            raise ConfigError("timeout_s and chars_per_token must be > 0 and max_retries >= 0")


@dataclass(frozen=True)
class QASettings:
    min_chrf: float = 50.0
    length_ratio: tuple[float, float] = (0.4, 2.0)
    length_ratio_min_chars: int = 20
    dropped_sentence_ratio: float = 0.71
    min_arabic_ratio: float = 0.6
    max_english_run_words: int = 3
    check_glossary: bool = True


@dataclass(frozen=True)
class TranslateSettings:
    prompt: str = "prompts/translate.yaml"
    back_prompt: str = "prompts/back_translate.yaml"
    temperature: float = 0.0
    retry_temperature: float = 0.4
    max_tokens: int = 2048
    max_tokens_per_char: float = 1.5
    max_tokens_per_segment: int = 32
    max_rounds: int = 2
    qa: QASettings = field(default_factory=QASettings)


@dataclass(frozen=True)
class SynthesizeSettings:
    prompt: str = "prompts/synthesize.yaml"
    temperature: float = 0.7
    temperature_step: float = 0.15
    max_temperature: float = 1.2
    seed: int = 0
    max_attempts: int = 3
    max_tokens: int = 1536
    min_turns: int = 6
    answer_coverage: float = 0.6
    leak_patterns: tuple[str, ...] = ()
    unsuitable_questions: tuple[str, ...] = ()
    unsuitable_answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    client: ClientSettings = field(default_factory=ClientSettings)
    translate: TranslateSettings = field(default_factory=TranslateSettings)
    synthesize: SynthesizeSettings = field(default_factory=SynthesizeSettings)


def _coerce(value, annotation, where: str):
    """Check `value` against a dataclass field type (the few types used here) and convert it."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_mapping(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported settings type {annotation!r}")  # a programming error, not a user one


def from_mapping(cls, data, where: str):
    """Build dataclass `cls` from a mapping, rejecting unknown keys; `where` names file and section."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})")
    values = {key: _coerce(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _load_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None


def load_settings(path: Path = SETTINGS_FILE) -> Settings:
    return from_mapping(Settings, _load_yaml(path), str(path))


def resolve_data_path(relative: str) -> Path:
    """A path named in settings.yaml, relative to this package."""
    return HERE / relative


@dataclass(frozen=True)
class Endpoint:
    """Where requests go, and the client limits for that endpoint."""

    base_url: str
    model: str
    api_key: str = field(repr=False, default="EMPTY")
    client: ClientSettings = field(default_factory=ClientSettings)

    @property
    def cache_scope(self) -> str:
        """What identifies the endpoint in a cache key: base URL without trailing slash, and model."""
        return f"{self.base_url.rstrip('/')}|{self.model}"

    def with_overrides(self, **overrides) -> Endpoint:
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if not overrides:
            return self
        try:
            client = dataclasses.replace(self.client, **overrides)
        except ConfigError as err:
            raise ConfigError(f"command line: {err}") from None
        return dataclasses.replace(self, client=client)


_ENDPOINT_KEYS = {"base_url", "model", "api_key", "api_key_env"}


def load_endpoint(path: str | os.PathLike | None, settings: Settings, environ=os.environ) -> Endpoint:
    """The endpoint from FILE.yaml (argument, else $BIMEDIX_LLM_ENDPOINT), else from the environment.

    Raises ConfigError with a one-line message saying how to configure one when none is.
    """
    path = path or environ.get(ENV_ENDPOINT_FILE) or None
    if path is not None:
        path = Path(path)
        data = _load_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with base_url and model")
        client_keys = {f.name for f in dataclasses.fields(ClientSettings)}
        unknown = sorted(set(data) - _ENDPOINT_KEYS - client_keys)
        if unknown:
            raise ConfigError(
                f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_ENDPOINT_KEYS | client_keys))})"
            )
        for key in ("base_url", "model"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise ConfigError(f"{path}: {key} is missing or empty")
        if "api_key" in data and "api_key_env" in data:
            raise ConfigError(f"{path}: give api_key or api_key_env, not both")
        key = data.get("api_key") or environ.get(data.get("api_key_env") or ENV_API_KEY) or "EMPTY"
        base = dataclasses.asdict(settings.client)
        base.update({k: v for k, v in data.items() if k in client_keys})
        client = from_mapping(ClientSettings, base, str(path))
        return Endpoint(base_url=data["base_url"].strip(), model=data["model"].strip(), api_key=key, client=client)
    base_url = environ.get(ENV_BASE_URL, "").strip()
    model = environ.get(ENV_MODEL, "").strip()
    if not base_url or not model:
        missing = ENV_BASE_URL if not base_url else ENV_MODEL
        raise ConfigError(f"no LLM endpoint configured ({missing} is unset): {HOW_TO_CONFIGURE}")
    return Endpoint(base_url=base_url, model=model, api_key=environ.get(ENV_API_KEY) or "EMPTY", client=settings.client)
