"""Bring the FastChat stack up on free loopback ports, keep it up, stop it all on exit.

The standard library (and PyYAML, for the settings) only, so that the other stages use it from the
main environment; the parts run as subprocesses under the serving environment's Python
(.venv-serve/bin/python):

    from serve.stack import ServeStack

    with ServeStack("models/tiny-bimedix-moe") as stack:
        client = openai.OpenAI(base_url=stack.api_base, api_key=stack.api_key or "none")
        client.chat.completions.create(model=stack.model_name, messages=[...])

Order: controller; then the workers and the OpenAI API server; then the web UI (it reads the
model list once, at start). Each part counts as up when it answers: the controller its model list,
a worker its own /worker_get_status (a worker registers with the controller before its port
listens, so the controller's list says nothing about it), the API server a /v1/models that lists
the model, the web UI its page; a worker also when the controller lists it. A part that exits or
stays silent past the timeout while starting stops everything and raises ServeError with the end
of its log. On exit the parts are stopped in reverse order, each by its PID: SIGTERM, then SIGKILL
after stack.stop_timeout_s.

Once up, a supervisor thread watches the parts (supervise.in the settings): a part that dies is
started again on its port after a backoff, with a line in the log (logging "serve.stack" and
<log_dir>/stack.log), while the other workers keep serving; after max_fast_crashes fast crashes in
a row of one part it gives up (`gave_up` says why; `python -m serve up` then stops and exits 1).

Each stack makes a secret that the parts it starts get in their environment; the controller and
the workers answer only requests that carry it (serve/trust.py, CVE-2024-10044).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from serve import trust
from serve.config import (
    ROOT,
    ServeError,
    Settings,
    connect_address,
    default_model_name,
    from_root,
    is_loopback,
    load_settings,
)

SERVE_PYTHON_ENV = "BIMEDIX_SERVE_PYTHON"
API_KEYS_ENV = "BIMEDIX_API_KEYS"
# Read from the environment by FastChat's own settings class (case-insensitive; API_KEYS parsed as
# JSON): never passed to the parts, so that `make serve API_KEYS=k1` (make exports it) cannot reach it.
FASTCHAT_ENV = ("api_keys", "controller_address")
_LOOPBACK = "127.0.0.1"
log = logging.getLogger("serve.stack")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes through a proxy


def serve_python() -> Path:
    """The serving environment's interpreter ($BIMEDIX_SERVE_PYTHON, else .venv-serve/bin/python)."""
    python = Path(os.environ.get(SERVE_PYTHON_ENV) or ROOT / ".venv-serve" / "bin" / "python")
    if not python.exists():
        raise ServeError(f"{python}: the serving environment is missing; run `make env-serve`")
    return python


def free_port(host: str = _LOOPBACK) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _connect_host(host: str) -> str:
    return connect_address(host) if host else _LOOPBACK


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def http(method: str, url: str, body: dict | None = None, *, headers: dict | None = None, timeout: float = 5.0):
    """One request with the standard library: (status, parsed JSON or text). Raises OSError when nothing answers."""
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the part gets SIGTERM if the launching process dies without stopping it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _port_taken(part: Part) -> bool:
    return "address already in use" in part.log_tail(40).lower()


@dataclass
class Part:
    """One running process of the stack."""

    role: str  # controller, worker-0, worker-1, ..., api, web
    port: int
    url: str
    log: Path
    process: subprocess.Popen = field(repr=False)
    # Starts the same part again on another free port (None when its port was fixed).
    respawn: Callable[[], Part] | None = field(default=None, repr=False)
    # Starts the same part again on the given port (the supervisor's restart).
    relaunch: Callable[[int], Part] | None = field(default=None, repr=False)
    attempt: int = 1
    # Supervision: "new" (not watched yet), "up", "down" (waiting for its restart), "starting".
    state: str = "new"
    up_since: float | None = None
    down_since: float | None = None
    restart_at: float = 0.0
    deadline: float = 0.0
    crashes: int = 0  # fast crashes in a row
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ServeStack:
    """The FastChat controller, model worker(s), OpenAI API server and, optionally, the web UI.

    model_path: a model folder (merged BiMediX, or the base with adapter=); None serves only the
      web UI in front of api_endpoint_file (a vLLM server: `python -m serve write-api-endpoints`).
    adapter: a LoRA adapter folder applied to model_path (merged at load: worker.merge_adapter).
    model_name: the name clients ask for (default: the adapter's or the model's folder name).
    workers: model workers on the one controller. web_ui: also start the web UI.
    api_keys: required by the OpenAI API when given; required when host is not loopback.
    host: where the API and the web UI listen (default stack.host, 127.0.0.1); the controller
      and workers always listen on 127.0.0.1.
    ports: fixed ports by part ("controller", "api", "web", "worker"; the worker port is the
      first worker's, the next ones count up); missing or 0 means a free port.
    log_dir: where every part logs (default stack.log_root/<timestamp>-<pid>/).
    worker_args: more options for fastchat.serve.model_worker (--num-gpus 2, --load-8bit, ...).
    env: more environment variables for every part.
    supervise: restart parts that die (default: settings supervise.restart).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        adapter: str | os.PathLike | None = None,
        model_name: str | None = None,
        workers: int = 1,
        web_ui: bool = False,
        api_keys: list[str] | tuple[str, ...] | None = None,
        host: str | None = None,
        ports: dict[str, int] | None = None,
        log_dir: str | os.PathLike | None = None,
        settings: str | os.PathLike | Settings | None = None,
        api_endpoint_file: str | os.PathLike | None = None,
        device: str | None = None,
        web_auth_file: str | os.PathLike | None = None,
        startup_timeout_s: float | None = None,
        worker_args: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        supervise: bool | None = None,
    ):
        self.settings = settings if isinstance(settings, Settings) else load_settings(settings)
        self.settings_path = self.settings.path
        self.model_path = Path(model_path).resolve() if model_path else None
        self.adapter = Path(adapter).resolve() if adapter else None
        self.api_endpoint_file = Path(api_endpoint_file).resolve() if api_endpoint_file else None
        self.web_auth_file = Path(web_auth_file).resolve() if web_auth_file else None
        self.model_name = model_name or (default_model_name(self.model_path, self.adapter) if self.model_path else None)
        self.n_workers = workers if self.model_path else 0
        self.web_ui = web_ui or self.model_path is None
        self.api_keys = [k for k in (api_keys or []) if k]
        self.host = host or self.settings.stack.host
        self.fixed_ports = {k: v for k, v in (ports or {}).items() if v}
        self.device = device
        self.worker_args = list(worker_args)
        self.extra_env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s or self.settings.stack.startup_timeout_s
        if log_dir:
            self.log_dir = Path(log_dir).resolve()
        else:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.log_dir = from_root(self.settings.stack.log_root) / f"{stamp}-{os.getpid()}"
        self.parts: dict[str, Part] = {}
        self._next_worker = 0
        self.supervise = self.settings.supervise.restart if supervise is None else supervise
        self.secret = trust.new_secret()  # the parts of this stack answer only one another
        self.events: list[str] = []  # what the supervisor did, one line each (also in <log_dir>/stack.log)
        self.gave_up: ServeError | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._check()

    # ---------------------------------------------------------------- checks before anything starts
    def _check(self) -> None:
        if self.model_path is None and self.api_endpoint_file is None:
            raise ServeError("nothing to serve: give a model folder, or an API endpoint file for the web UI")
        for label, path in (("model", self.model_path), ("adapter", self.adapter)):
            if path is not None and not path.is_dir():
                raise ServeError(f"{label} {path}: no such folder")
        if self.model_path is not None and not (self.model_path / "config.json").exists():
            raise ServeError(f"model {self.model_path}: no config.json (not a Hugging Face model folder)")
        if self.adapter is not None and not (self.adapter / "adapter_config.json").exists():
            raise ServeError(f"adapter {self.adapter}: no adapter_config.json (not a PEFT adapter folder)")
        if self.api_endpoint_file is not None and not self.api_endpoint_file.is_file():
            raise ServeError(f"API endpoint file {self.api_endpoint_file}: not found")
        if self.n_workers < 0 or (self.model_path is not None and self.n_workers < 1):
            raise ServeError(f"workers = {self.n_workers}: at least one worker serves a model")
        if not is_loopback(self.host):
            if self.model_path is not None and not self.api_keys:
                raise ServeError(
                    f"refusing to serve the OpenAI API on {self.host} without API keys: anyone who reaches it "
                    f"could use the model. Give API keys ({API_KEYS_ENV}, --api-keys-file) or bind 127.0.0.1."
                )
            if self.web_ui and not self.web_auth_file:
                raise ServeError(
                    f"refusing to serve the web UI on {self.host} without a web auth file (user:password pairs): "
                    "anyone who reaches it could use the model. Give one, or bind 127.0.0.1."
                )
        unknown = sorted(set(self.fixed_ports) - {"controller", "worker", "api", "web"})
        if unknown:
            raise ServeError(f"ports: unknown part(s) {unknown}; known: controller, worker, api, web")

    # ---------------------------------------------------------------- properties for the callers
    @property
    def api_base(self) -> str | None:
        part = self.parts.get("api")
        return f"{part.url}/v1" if part else None

    @property
    def api_key(self) -> str | None:
        return self.api_keys[0] if self.api_keys else None

    @property
    def controller_url(self) -> str | None:
        part = self.parts.get("controller")
        return part.url if part else None

    @property
    def web_url(self) -> str | None:
        part = self.parts.get("web")
        return part.url if part else None

    @property
    def internal_headers(self) -> dict[str, str]:
        """The header the controller and the workers require (for a caller that talks to them directly)."""
        return trust.headers(self.secret)

    @property
    def workers(self) -> list[Part]:
        return [p for role, p in list(self.parts.items()) if role.startswith("worker-")]

    @property
    def ports(self) -> dict[str, int]:
        return {role: p.port for role, p in self.parts.items()}

    @property
    def pids(self) -> dict[str, int]:
        return {role: p.pid for role, p in self.parts.items()}

    @property
    def logs(self) -> dict[str, Path]:
        return {role: p.log for role, p in self.parts.items()}

    # ---------------------------------------------------------------- starting
    def _env(self, role: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        env["LOGDIR"] = str(self.log_dir)  # FastChat's own logs and the web UI's conversation log
        env["GRADIO_ANALYTICS_ENABLED"] = "False"
        env["TOKENIZERS_PARALLELISM"] = "false"
        env["NO_PROXY"] = env["no_proxy"] = ",".join(filter(None, ["127.0.0.1,localhost,::1", env.get("NO_PROXY")]))
        env.pop(API_KEYS_ENV, None)
        for name in [n for n in env if n.lower() in FASTCHAT_ENV]:
            del env[name]
        env.update(self.extra_env)
        env[trust.SECRET_ENV] = self.secret  # in the environment: `ps` shows command lines
        if role == "api" and self.api_keys:
            env[API_KEYS_ENV] = ",".join(self.api_keys)  # not on the command line, where `ps` shows it
        return env

    def _spawn(self, role: str, module: str, args: list[str], host: str, port: int | None) -> Part:
        """Start one part; port None: a free one, and another free one if that is taken meanwhile."""
        fixed = port is not None
        port = port if fixed else free_port(_connect_host(host))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{role}.out"
        command = [str(serve_python()), "-m", module, "--host", host, "--port", str(port), *args]
        command += ["--settings", str(self.settings_path)]
        with open(log, "ab") as out:
            out.write(f"$ {' '.join(command)}\n".encode())
            out.flush()
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self._env(role),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the launcher only, which stops the parts in order
                preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None,
            )
        url = f"http://{_url_host(_connect_host(host))}:{port}"
        respawn = None if fixed else (lambda: self._spawn(role, module, args, host, None))
        part = Part(role, port, url, log, process, respawn, lambda same: self._spawn(role, module, args, host, same))
        with self._lock:
            self.parts[role] = part
        return part

    def _port(self, key: str, offset: int = 0) -> int | None:
        fixed = self.fixed_ports.get(key)
        return fixed + offset if fixed else None

    def _start_controller(self) -> Part:
        return self._spawn("controller", "serve.controller", [], _LOOPBACK, self._port("controller"))

    def _start_worker(self) -> Part:
        index = self._next_worker
        self._next_worker += 1
        args = ["--model-path", str(self.model_path), "--model-name", self.model_name]
        args += ["--controller-address", self.controller_url]
        if self.adapter:
            args += ["--adapter", str(self.adapter)]
        if self.device:
            args += ["--device", self.device]
        port = self._port("worker", offset=index)
        return self._spawn(f"worker-{index}", "serve.worker", args + self.worker_args, _LOOPBACK, port)

    def _start_api(self) -> Part:
        args = ["--controller-address", self.controller_url]
        return self._spawn("api", "serve.api", args, self.host, self._port("api"))

    def _start_web(self) -> Part:
        args = []
        if self.controller_url:
            args += ["--controller-url", self.controller_url]
        if self.model_name:
            args += ["--model-name", self.model_name]
        if self.api_endpoint_file:
            args += ["--api-endpoint-file", str(self.api_endpoint_file)]
        if self.web_auth_file:
            args += ["--auth-file", str(self.web_auth_file)]
        return self._spawn("web", "serve.webui", args, self.host, self._port("web"))

    # ---------------------------------------------------------------- health
    def _healthy(self, part: Part, timeout: float = 15) -> bool:
        internal = self.internal_headers
        try:
            if part.role == "controller":
                status, _ = http("POST", part.url + "/list_models", headers=internal, timeout=min(timeout, 5))
                return status == 200
            if part.role.startswith("worker-"):
                status, body = http("POST", part.url + "/worker_get_status", headers=internal, timeout=min(timeout, 5))
                if status != 200 or self.model_name not in body.get("model_names", []):
                    return False
                # It registers once its port listens: it serves when the controller lists it.
                status, body = http("POST", self.controller_url + "/stack_workers", headers=internal, timeout=5)
                return status == 200 and part.url in body.get("workers", [])
            if part.role == "api":
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                status, body = http("GET", part.url + "/v1/models", headers=headers, timeout=timeout)
                return status == 200 and self.model_name in [m.get("id") for m in body.get("data", [])]
            if part.role == "web":
                status, _ = http("GET", part.url + "/", timeout=timeout)
                return status == 200
        except (OSError, AttributeError, ValueError, TypeError):
            return False
        raise ValueError(part.role)

    def ready(self, model: str | None = None, timeout: float = 5) -> bool:
        """True when the OpenAI API says a model worker answers (GET /ready), for `model` when given."""
        part = self.parts.get("api")
        if part is None:
            return False
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        query = f"?model={urllib.request.quote(model)}" if model else ""
        try:
            return http("GET", f"{part.url}/ready{query}", headers=headers, timeout=timeout)[0] == 200
        except OSError:
            return False

    def wait_healthy(self, parts: list[Part], timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.startup_timeout_s)
        waiting = list(parts)
        while waiting:
            for part in list(waiting):
                if not part.alive() and part.respawn and part.attempt < 3 and _port_taken(part):
                    # Another program took the free port between our look and the part's bind.
                    fresh = part.respawn()
                    fresh.attempt = part.attempt + 1
                    waiting[waiting.index(part)] = fresh
                    continue
                if not part.alive():
                    raise ServeError(
                        f"the {part.role} exited with code {part.process.returncode} while starting; "
                        f"its log, {part.log}, ends with:\n{part.log_tail()}"
                    )
                if self._healthy(part):
                    waiting.remove(part)
            if waiting and time.monotonic() > deadline:
                part = waiting[0]
                raise ServeError(
                    f"the {part.role} did not answer at {part.url} within {timeout_s or self.startup_timeout_s:.0f} s; "
                    f"its log, {part.log}, ends with:\n{part.log_tail()}"
                )
            if waiting:
                time.sleep(0.25)

    def start(self) -> ServeStack:
        try:
            if self.model_path is not None:
                self.wait_healthy([self._start_controller()])
                workers = [self._start_worker() for _ in range(self.n_workers)]
                api = self._start_api()
                self.wait_healthy(workers)
                self.wait_healthy([api])
            if self.web_ui:
                self.wait_healthy([self._start_web()])
        except BaseException:
            self.stop()
            raise
        now = time.monotonic()
        for part in list(self.parts.values()):
            part.state, part.up_since = "up", now
        if self.supervise:
            self._supervisor = threading.Thread(target=self._supervise, name="serve-stack-supervisor", daemon=True)
            self._supervisor.start()
        return self

    # ---------------------------------------------------------------- supervision
    def _event(self, message: str) -> None:
        stamp = datetime.datetime.now().isoformat(timespec="milliseconds")
        self.events.append(f"{stamp} {message}")
        log.warning("[stack] %s", message)
        with contextlib.suppress(OSError), open(self.log_dir / "stack.log", "a", encoding="utf-8") as out:
            out.write(f"{stamp} {message}\n")

    def _supervise(self) -> None:
        """Watch the parts; restart the dead ones with backoff; give up on repeated fast crashes."""
        # The thread lives until stop(), also after giving up: on Linux the parts it restarted get
        # SIGTERM when the thread that started them ends (PR_SET_PDEATHSIG).
        while not self._stopping.wait(0.25):
            for part in list(self.parts.values()):
                if self._stopping.is_set() or self.gave_up is not None:
                    break
                try:
                    self._tend(part)
                except Exception as err:  # never let the supervisor die silently
                    self._event(f"supervisor error on the {part.role}: {type(err).__name__}: {err}")

    def _tend(self, part: Part) -> None:
        now = time.monotonic()
        if part.state == "up":
            if not part.alive():
                self._crashed(part, now, f"exited with code {part.process.returncode}")
        elif part.state == "down":
            if now >= part.restart_at:
                self._restart(part, part.port)
        elif part.state == "starting":
            if not part.alive():
                if part.respawn and part.role.startswith("worker-") and _port_taken(part):
                    self._event(f"the {part.role}'s port {part.port} is taken; restarting it on a free port")
                    self._restart(part, None)
                else:
                    self._crashed(part, now, f"exited with code {part.process.returncode} while restarting")
            elif self._healthy(part, timeout=3):
                part.state, part.up_since = "up", now
                if part.role == "controller":
                    self._register_workers()  # before saying it is back: then it serves
                self._event(
                    f"the {part.role} is back (pid {part.pid}, port {part.port}), "
                    f"{now - (part.down_since or now):.1f} s after it went down"
                )
            elif now > part.deadline:
                with contextlib.suppress(ProcessLookupError):
                    part.process.kill()
                part.process.wait()
                self._crashed(part, now, f"did not answer within {self.startup_timeout_s:.0f} s of its restart")

    def _crashed(self, part: Part, now: float, why: str) -> None:
        rules = self.settings.supervise
        fast = part.up_since is None or part.state == "starting" or now - part.up_since < rules.fast_crash_s
        part.crashes = part.crashes + 1 if fast else 1
        if part.state == "up":
            part.down_since = now
        if part.role.startswith("worker-"):
            self._drop_dead_workers()
        if part.crashes >= rules.max_fast_crashes:
            part.state = "failed"
            self.gave_up = ServeError(
                f"the {part.role} (pid {part.pid}) {why}: {part.crashes} crashes in a row, each within "
                f"{rules.fast_crash_s:.0f} s of starting; giving up. Its log, {part.log}, ends with:\n{part.log_tail()}"
            )
            self._event(f"the {part.role} (pid {part.pid}) {why}; {part.crashes} fast crashes in a row: giving up")
            return
        delay = min(rules.backoff_cap_s, rules.backoff_s * 2 ** (part.crashes - 1))
        part.state, part.restart_at = "down", now + delay
        self._event(
            f"the {part.role} (pid {part.pid}) {why}; restarting it in {delay:.1f} s "
            f"(crash {part.crashes} in a row; the stack gives up after {rules.max_fast_crashes} fast ones)"
        )

    def _restart(self, part: Part, port: int | None) -> None:
        fresh = part.relaunch(port) if port is not None else part.respawn()
        fresh.state, fresh.deadline = "starting", time.monotonic() + self.startup_timeout_s
        fresh.crashes, fresh.restarts, fresh.down_since = part.crashes, part.restarts + 1, part.down_since
        fresh.up_since = part.up_since
        self._event(f"restarting the {part.role} on port {fresh.port} (pid {fresh.pid}, restart {fresh.restarts})")

    def _drop_dead_workers(self) -> None:
        """Ask the controller to forget the workers that do not answer, so that no request is routed to them."""
        with contextlib.suppress(OSError):
            http("POST", self.controller_url + "/refresh_all_workers", headers=self.internal_headers, timeout=10)

    def _register_workers(self) -> None:
        """A restarted controller knows no worker: register the running ones (they would otherwise wait for their next heart beat)."""
        for worker in self.workers:
            if worker.state == "up" and worker.alive():
                body = {"worker_name": worker.url, "check_heart_beat": True}
                with contextlib.suppress(OSError):
                    http("POST", self.controller_url + "/register_worker", body, headers=self.internal_headers)

    # ---------------------------------------------------------------- workers coming and going
    def add_worker(self) -> Part:
        """Start one more worker on the controller and wait until it answers."""
        if self.model_path is None or "controller" not in self.parts:
            raise ServeError("no controller to add a worker to")
        part = self._start_worker()
        self.wait_healthy([part])
        part.state, part.up_since = "up", time.monotonic()
        return part

    def kill_worker(self, index: int = 0, sig: int = signal.SIGKILL) -> None:
        """Kill worker <index> by its PID, as a crash would (SIGKILL by default)."""
        part = self.parts[f"worker-{index}"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(part.pid, sig)
        part.process.wait(timeout=self.settings.stack.stop_timeout_s)

    def failed(self) -> list[Part]:
        """Parts that exited although nobody stopped them."""
        return [p for p in self.parts.values() if not p.alive()]

    # ---------------------------------------------------------------- stopping
    def stop(self) -> None:
        """Stop every part this stack started, web UI first, controller last; each by its PID."""
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=60)
        rank = {"web": 0, "api": 1, "controller": 3}  # workers: 2
        with self._lock:
            order = sorted(self.parts.values(), key=lambda p: rank.get(p.role, 2))
        for part in order:
            if part.alive():
                with contextlib.suppress(ProcessLookupError):
                    part.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stack.stop_timeout_s
        for part in order:
            try:
                part.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    part.process.kill()
                part.process.wait()

    def __enter__(self) -> ServeStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def describe(self) -> str:
        lines = [f"model      {self.model_name or '-'}" + (f" (adapter {self.adapter})" if self.adapter else "")]
        if self.api_base:
            lines.append(f"OpenAI API {self.api_base}" + ("  (API key required)" if self.api_keys else ""))
        if self.web_url:
            lines.append(f"web UI     {self.web_url}/")
        for part in self.parts.values():
            lines.append(f"{part.role:<10} pid {part.pid:<8} port {part.port:<6} {part.url}")
        lines.append(f"logs       {self.log_dir}")
        return "\n".join(lines)
