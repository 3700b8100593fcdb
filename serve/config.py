"""The serving stack's settings (serve/settings.yaml) as dataclasses, and the loopback rule.

The standard library and PyYAML only: serve/stack.py imports this from the main environment too
(both environments have PyYAML).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path

SERVE_DIR = Path(__file__).resolve().parent
ROOT = SERVE_DIR.parent
DEFAULT_SETTINGS = SERVE_DIR / "settings.yaml"

CVE_CONTROLLER = (
    "the FastChat controller has no authentication and lets anyone who reaches it register a worker "
    "(SSRF and model spoofing, CVE-2024-10044)"
)


class ServeError(RuntimeError):
    """A part of the stack cannot start, or a setting is refused. The message says which and why."""


@dataclass(frozen=True)
class StackSettings:
    host: str = "127.0.0.1"
    log_root: str = "logs/serve"
    startup_timeout_s: float = 600
    stop_timeout_s: float = 15


@dataclass(frozen=True)
class SuperviseSettings:
    restart: bool = True
    backoff_s: float = 1.0
    backoff_cap_s: float = 30.0
    fast_crash_s: float = 60.0
    max_fast_crashes: int = 5


@dataclass(frozen=True)
class ControllerSettings:
    dispatch_method: str = "shortest_queue"
    heart_beat_expiration_s: int = 60
    heart_beat_interval_s: int = 20


@dataclass(frozen=True)
class WorkerSettings:
    device: str = "auto"
    limit_worker_concurrency: int = 5
    stream_interval: int = 2
    merge_adapter: bool = True


@dataclass(frozen=True)
class ApiSettings:
    max_request_bytes: int = 1_048_576
    max_tokens: int = 2048
    default_max_tokens: int = 512
    max_n: int = 4
    allowed_origins: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WebSettings:
    max_input_chars: int = 8000
    concurrency: int = 8


@dataclass(frozen=True)
class ConversationSettings:
    name: str = "bimedix"
    system_template: str = "[INST] {system_message}\n\n"
    roles: list[str] = field(default_factory=lambda: ["[INST]", "[/INST]"])
    sep_style: str = "LLAMA2"
    sep: str = " "
    sep2: str = "</s>"


@dataclass(frozen=True)
class ModelInfoSettings:
    simple_name: str = "BiMediX"
    link: str = ""
    description: str = ""


@dataclass(frozen=True)
class NoticeSettings:
    markdown: str = ""


@dataclass(frozen=True)
class Settings:
    path: Path
    stack: StackSettings
    supervise: SuperviseSettings
    controller: ControllerSettings
    worker: WorkerSettings
    api: ApiSettings
    web: WebSettings
    conversation: ConversationSettings
    model_info: ModelInfoSettings
    notice: NoticeSettings


_TYPES = {
    "stack": StackSettings,
    "supervise": SuperviseSettings,
    "controller": ControllerSettings,
    "worker": WorkerSettings,
    "api": ApiSettings,
    "web": WebSettings,
    "conversation": ConversationSettings,
    "model_info": ModelInfoSettings,
    "notice": NoticeSettings,
}
_PYTHON_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list[str]": list}


def _section(path: Path, name: str, values: object):
    cls = _TYPES[name]
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ServeError(f"{path}: {name} must be a mapping of keys to values")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ServeError(f"{path}: {name} has unknown key(s) {unknown}; known: {sorted(fields)}")
    for key, value in values.items():
        expected = _PYTHON_TYPES[fields[key].type]
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ServeError(f"{path}: {name}.{key} = {value!r} is not a {fields[key].type}")
    return cls(**values)


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and check a settings file; an unknown section or key, or a wrong type, is an error."""
    import yaml

    path = Path(path) if path else DEFAULT_SETTINGS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServeError(f"{path}: settings file not found") from None
    except yaml.YAMLError as err:
        raise ServeError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ServeError(f"{path}: expected a mapping of sections (stack, api, ...), not a {type(data).__name__}")
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise ServeError(f"{path}: unknown section(s) {unknown}; known: {sorted(_TYPES)}")
    sections = {name: _section(path, name, data.get(name, {})) for name in _TYPES}
    settings = Settings(path=path, **sections)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    where = s.path
    positive = {
        "api.max_request_bytes": s.api.max_request_bytes,
        "api.max_tokens": s.api.max_tokens,
        "api.default_max_tokens": s.api.default_max_tokens,
        "api.max_n": s.api.max_n,
        "web.max_input_chars": s.web.max_input_chars,
        "web.concurrency": s.web.concurrency,
        "worker.limit_worker_concurrency": s.worker.limit_worker_concurrency,
        "worker.stream_interval": s.worker.stream_interval,
        "controller.heart_beat_interval_s": s.controller.heart_beat_interval_s,
        "stack.startup_timeout_s": s.stack.startup_timeout_s,
        "supervise.backoff_s": s.supervise.backoff_s,
        "supervise.backoff_cap_s": s.supervise.backoff_cap_s,
        "supervise.max_fast_crashes": s.supervise.max_fast_crashes,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ServeError(f"{where}: {key} = {value} must be positive")
    if s.api.default_max_tokens > s.api.max_tokens:
        raise ServeError(f"{where}: api.default_max_tokens exceeds api.max_tokens")
    if s.controller.heart_beat_expiration_s <= s.controller.heart_beat_interval_s:
        raise ServeError(f"{where}: controller.heart_beat_expiration_s must exceed heart_beat_interval_s")
    if s.controller.dispatch_method not in ("shortest_queue", "lottery"):
        raise ServeError(f"{where}: controller.dispatch_method must be shortest_queue or lottery")
    if s.worker.device not in ("auto", "cpu", "cuda", "mps", "xpu", "npu"):
        raise ServeError(f"{where}: worker.device = {s.worker.device!r} is not auto, cpu, cuda, mps, xpu or npu")
    if len(s.conversation.roles) != 2:
        raise ServeError(f"{where}: conversation.roles must name exactly two roles (user, assistant)")


def _is_loopback_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or ip).is_loopback


@functools.lru_cache(maxsize=256)
def host_addresses(host: str) -> tuple[str, ...]:
    """The addresses a host string binds or connects to, as the socket layer reads it (uvicorn, urllib).

    Numeric spellings count as what they are (127.1, 0x7f.1 and 2130706433 are 127.0.0.1); a name
    is resolved (/etc/hosts first). Empty when it does not resolve.
    """
    name = host.strip().removeprefix("[").removesuffix("]")
    if not name:
        return ()
    for flags in (socket.AI_NUMERICHOST, 0):
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=flags)
        except (OSError, UnicodeError, ValueError):
            continue
        return tuple(dict.fromkeys(info[4][0] for info in infos))
    return ()


def is_loopback(host: str) -> bool:
    """True when every address the host stands for is one only this machine reaches (127.0.0.0/8, ::1).

    Recognised by address, not by spelling: 127.1, 127.0.0.2, ::1, [::1], ::ffff:127.0.0.1 and
    localhost are loopback; 0.0.0.0, :: and anything that does not resolve are not.
    """
    addresses = host_addresses(host)
    return bool(addresses) and all(_is_loopback_address(a) for a in addresses)


def connect_address(host: str) -> str:
    """The address a client on this machine uses to reach a part bound to `host` (0.0.0.0 and :: -> 127.0.0.1)."""
    addresses = host_addresses(host)
    if not addresses or host.strip("[]") in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return addresses[0]


def require_loopback(part: str, host: str) -> None:
    """The controller and the workers never listen beyond this machine."""
    if not is_loopback(host):
        raise ServeError(
            f"refusing to bind the {part} to {host}: {CVE_CONTROLLER}. The {part} only binds loopback "
            "(127.0.0.1); to spread workers over machines, tunnel the ports over SSH (serve/README.md)."
        )


def from_root(path: str | Path) -> Path:
    """A path from the settings file: absolute as given, else relative to the repository root."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def default_model_name(model_path: str | Path, adapter: str | Path | None = None) -> str:
    """The name clients ask for when none is given: the adapter's folder name, else the model's."""
    return Path(adapter or model_path).resolve().name
