"""make demo: the whole BiMediX recipe at small scale, offline, on a CPU, with a real pretrained MoE.

    python -m demo all                 # teacher, data (then the teacher stops), train, eval, serve
    python -m demo teacher|data|train|eval|serve [--force]
    python -m demo stop                # stop the teacher started by `teacher`
    python -m demo status              # which steps are up to date, and the teacher
    python -m demo clean               # stop the teacher, remove the demo's outputs

The models come from `make small-model` (make builds them, and the environments, before any step):
the small MoE (SmolLM2-135M-Instruct upcycled into a 4-expert top-2 Mixtral, models/small-bimedix-moe)
is trained, scored and served; the dense SmolLM2 in its own ChatML layout (models/smollm2-135m-instruct)
is the teacher that writes chats and tries translations for the LLM data stages.

A step first runs the steps it needs (each reused when up to date). A step is reused when the
sha256 of its inputs, of its settings (demo/demo.yaml) and of its outputs match the stamp it left
in logs/demo/<step>.json; --force (make: DEMO_FORCE=1) runs the named step again (`all`: every
step). Each step's tools write to logs/demo/<step>.log; the terminal gets the headlines. A failed
step ends the command with one line naming the step and its log, then the log's last lines.

The teacher is the project's FastChat stack (`python -m serve up`, API only, with the settings file
demo/teacher_serve.yaml) in the background. Its state is logs/demo/teacher.json (pid, URL, model
name, API key, logs); it is stopped by PID (its process group); `all` stops it as soon as the data
step is done (only that step uses it), and after a failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bimedix.envs import ENVS
from bimedix.files import sha256_file
from bimedix.paths import ROOT, SMALL_MODEL_DIR, SMALL_TEACHER_DIR

if TYPE_CHECKING:  # third-party imports are lazy: `python -m demo --help` starts fast
    from rich.console import Console

CONFIG_FILE = Path(__file__).resolve().parent / "demo.yaml"
ORDER = ("teacher", "data", "train", "eval", "serve")
NEEDS = {
    "teacher": (),
    "data": (),
    "train": ("data",),
    "eval": ("train",),
    "serve": ("train",),
}
TITLES = {
    "teacher": "FastChat serving the dense SmolLM2-135M-Instruct (ChatML) as the LLM stages' teacher (API only, background)",
    "data": "chats by synthesis and Arabic by translation through the teacher, then the bilingual mix at 1:2",
    "train": "the small QLoRA recipe (attention, 4 experts, router) through Axolotl, then the merge with the expert LoRA kept",
    "eval": "the base and the fine-tuned MoE on the medical benchmarks' embedded sample, paper-shaped tables",
    "serve": "the fine-tuned MoE behind FastChat's OpenAI API: one English and one Arabic question",
}
SKIPPED_IN_DIGEST = {"__pycache__", ".pytest_cache", ".ruff_cache"}
STAMP_VERSION = 1
TAIL_LINES = 25
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DemoError(RuntimeError):
    """A step failed; the message is one line. `log` is the file that tells more."""

    def __init__(self, message: str, log: Path | None = None):
        super().__init__(message)
        self.log = log


class Interrupted(DemoError):
    """Ctrl-C or SIGTERM."""


# ------------------------------------------------------------------------------------------ paths
def rel(path: Path | str) -> str:
    """A path as the user should read it: relative to the repository root when inside it."""
    path = Path(os.path.abspath(path))  # not resolve(): .venv may be a link to another checkout's
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def at_root(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


# ------------------------------------------------------------------------------------------ settings
def load_config(
    path: Path = CONFIG_FILE, model: Path | str = SMALL_MODEL_DIR, teacher: Path | str = SMALL_TEACHER_DIR
) -> dict:
    """demo/demo.yaml with `{model}` and `{teacher}` replaced; a problem is one line naming the file and key."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoError(f"{rel(path)}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DemoError(f"{rel(path)}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
    if not isinstance(config, dict) or not isinstance(config.get("steps"), dict):
        raise DemoError(f"{rel(path)}: expected a mapping with `log_dir` and `steps`")
    unknown = sorted(set(config["steps"]) - set(ORDER))
    missing = sorted(set(ORDER) - set(config["steps"]))
    if unknown or missing:
        raise DemoError(f"{rel(path)}: steps: unknown {unknown} / missing {missing}; expected {list(ORDER)}")
    names = {"{model}": rel(at_root(model)), "{teacher}": rel(at_root(teacher))}

    def fill(value):
        if isinstance(value, str):
            for key, name in names.items():
                value = value.replace(key, name)
            return value
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    config = fill(config)
    config["model"], config["teacher"] = names["{model}"], names["{teacher}"]
    if not isinstance(config.get("notice"), str) or not config["notice"].strip():
        raise DemoError(f"{rel(path)}: notice: the demo must say what the model's answers are not")
    for name, section in config["steps"].items():
        if not isinstance(section, dict):
            raise DemoError(f"{rel(path)}: steps.{name}: expected a mapping")
        for key in ("inputs", "outputs"):
            value = section.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DemoError(f"{rel(path)}: steps.{name}.{key}: expected a list of paths")
    return config


# ------------------------------------------------------------------------------------------ digests and stamps
def _counted(path: Path, top: Path) -> bool:
    parts = path.relative_to(top).parts
    return not (set(parts) & SKIPPED_IN_DIGEST) and path.suffix not in (".pyc", ".md")


def digest_path(path: Path) -> str | None:
    """sha256 of a file, or of a folder's files (relative names and contents; *.md and caches left out)."""
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file() and _counted(p, path)):
            digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
        return digest.hexdigest()
    return None


def digest_paths(paths: list[str]) -> dict[str, str | None]:
    return {p: digest_path(at_root(p)) for p in paths}


def settings_digest(section: dict) -> str:
    return hashlib.sha256(json.dumps(section, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Freshness:
    fresh: bool
    reason: str  # why it must run, or since when it is up to date
    stamp: dict | None = None


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: Path, value: dict, mode: int | None = None) -> None:
    """Atomic: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)


def freshness(stamp_path: Path, section: dict) -> Freshness:
    """Up to date when the stamp's inputs, settings and outputs all match what is on disk now."""
    if not stamp_path.exists():
        return Freshness(False, "never run")
    stamp = read_json(stamp_path)
    if stamp is None or stamp.get("version") != STAMP_VERSION:
        return Freshness(False, f"{rel(stamp_path)} unreadable")
    if stamp.get("settings") != settings_digest(section):
        return Freshness(False, "its settings in demo/demo.yaml changed")
    inputs = digest_paths(section.get("inputs", []))
    changed = [p for p, d in inputs.items() if d is None or stamp.get("inputs", {}).get(p) != d]
    if changed or set(stamp.get("inputs", {})) != set(inputs):
        return Freshness(False, f"inputs changed: {', '.join(changed) or 'the list of inputs'}")
    outputs = digest_paths(section.get("outputs", []))
    gone = [p for p, d in outputs.items() if d is None]
    if gone:
        return Freshness(False, f"outputs missing: {', '.join(gone)}")
    altered = [p for p, d in outputs.items() if stamp.get("outputs", {}).get(p) != d]
    if altered:
        return Freshness(False, f"outputs changed since the step ran: {', '.join(altered)}")
    return Freshness(True, f"inputs unchanged since {stamp.get('finished', '?')}", stamp)


def write_stamp(stamp_path: Path, step: str, section: dict, inputs: dict, seconds: float) -> dict:
    outputs = digest_paths(section.get("outputs", []))
    missing = [p for p, d in outputs.items() if d is None]
    if missing:
        raise DemoError(f"the {step} step finished but did not write {', '.join(missing)}")
    stamp = {
        "version": STAMP_VERSION,
        "step": step,
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "settings": settings_digest(section),
        "inputs": inputs,
        "outputs": outputs,
    }
    write_json(stamp_path, stamp)
    return stamp


# ------------------------------------------------------------------------------------------ processes
def process_alive(pid: int, needles: tuple[bytes, ...] = ()) -> bool:
    """pid runs (not a zombie) and, where /proc exists, its command line holds every needle.

    The needles guard against a recycled PID: the state file may outlive the process by days.
    """
    if pid <= 0:
        return False
    proc = Path("/proc") / str(pid)
    if Path("/proc/self").exists():
        try:
            status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        return status not in ("Z", "X") and all(n in cmdline for n in needles)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_gone(pid: int, needles: tuple[bytes, ...], timeout_s: float, child: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return True
        if child is None and not process_alive(pid, needles):
            return True
        time.sleep(0.2)
    return False


def signal_group(pid: int, sig: int) -> None:
    """Signal pid's process group when pid leads it (the teacher does: start_new_session), else pid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What every tool the demo runs sees: the repository on PYTHONPATH, offline hubs, the main env's bin."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(ENVS["main"].path / "bin"), env.get("PATH", "")])
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", AXOLOTL_DO_NOT_TRACK="1")
    env.update(extra or {})
    return env


def tail(path: Path | None, lines: int = TAIL_LINES) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    # Progress bars rewrite one line with carriage returns: keep what the last rewrite shows.
    shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(line for line in shown[-lines:])


def printable(text: str, limit: int = 240) -> str:
    """Model output for a terminal: control characters shown as U+FFFD, one line, cut at `limit`."""
    text = " ".join(text.split())
    text = "".join("\ufffd" if unicodedata.category(c) == "Cc" else c for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def require_model(folder: str, what: str) -> None:
    """A model folder that `make small-model` writes; make builds it before any demo step runs."""
    if not (at_root(folder) / "config.json").exists():
        raise DemoError(f"{folder}: {what} is not built; run `make small-model` (make demo does)")


def has_scores(row: str) -> bool:
    """Whether a Markdown table row of eval_tasks' tables has a score after its label (a missing one is `–`)."""
    return any(re.fullmatch(r"\d+(\.\d+)?", cell.strip()) for cell in row.split("|")[2:])


# ------------------------------------------------------------------------------------------ the teacher
PART_LINE = re.compile(r"^(controller|worker-\d+|api|web)\s+pid (\d+)\s+port (\d+)", re.MULTILINE)


class Teacher:
    """The background FastChat stack (serve up --no-web) serving the teacher model for the LLM stages."""

    def __init__(self, config: dict, log_dir: Path, say: Callable[[str], None]):
        self.settings = config["steps"]["teacher"]
        self.model = config["teacher"]
        self.log_dir = log_dir
        self.state_file = log_dir / "teacher.json"
        self.log = log_dir / "teacher.log"
        self.say = say
        self.child: subprocess.Popen | None = None  # set when this process started it

    # ---- state
    def state(self) -> dict | None:
        """teacher.json, or None when absent or not in the shape this module writes."""
        state = read_json(self.state_file)
        if state is None:
            return None
        valid = isinstance(state.get("pid"), int) and isinstance(state.get("base_url"), str)
        return state if valid and isinstance(state.get("model_name"), str) else None

    @staticmethod
    def needles(state: dict) -> tuple[bytes, ...]:
        port = state.get("base_url", "").rsplit(":", 1)[-1].split("/")[0]
        return (b"serve\0up\0", f"--api-port\0{port}\0".encode())

    def answers(self, state: dict) -> bool:
        headers = {"Authorization": f"Bearer {state['api_key']}"} if state.get("api_key") else {}
        request = urllib.request.Request(state["base_url"].rstrip("/") + "/models", headers=headers)
        try:
            with _NO_PROXY.open(request, timeout=5) as response:
                body = json.loads(response.read().decode("utf-8"))
        except (OSError, ValueError):
            return False
        return state.get("model_name") in [m.get("id") for m in body.get("data", [])]

    def live(self) -> dict | None:
        """The running teacher, or None; a state file whose process is gone is removed (and said so)."""
        state = self.state()
        if state is None:
            if self.state_file.exists():
                self.say(f"  {rel(self.state_file)} is unreadable: removed")
                self.state_file.unlink()
            return None
        pid = state["pid"]
        if not process_alive(pid, self.needles(state)):
            self.say(f"  found a stale {rel(self.state_file)} (pid {pid} is not running): removed")
            self.state_file.unlink(missing_ok=True)
            return None
        if state.get("model_path") != self.model:
            self.say(f"  the running teacher serves {state.get('model_path')}, not {self.model}: stopping it")
            self.stop()
            return None
        if not self.answers(state):
            self.say(f"  the teacher (pid {pid}) does not answer at {state.get('base_url')}: stopping it")
            self.stop(quiet=True)
            return None
        return state

    # ---- start and stop
    def start(self) -> dict:
        from serve.config import ServeError
        from serve.stack import free_port, serve_python

        try:
            python = serve_python()
        except ServeError as err:
            raise DemoError(str(err)) from None
        require_model(self.model, "the teacher")
        serve_log_dir = at_root(self.settings["log_dir"])
        for attempt in range(2):
            port = free_port()
            key = secrets.token_hex(16)  # the API is on loopback, but the machine is shared
            command = [rel(python), "-m", "serve", "up", "--model", self.model, "--settings", self.settings["settings"]]
            command += ["--model-name", self.settings["model_name"], "--no-web", "--api-port", str(port)]
            command += ["--log-dir", rel(serve_log_dir)]
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log, "ab") as out:
                out.write(f"$ {shlex.join(command)}\n".encode())
                out.flush()
                env = tool_env(
                    {"BIMEDIX_API_KEYS": key, **{k: str(v) for k, v in self.settings.get("env", {}).items()}}
                )
                self.child = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped as one, and Ctrl-C does not reach it
                )  # fmt: skip
            state = {
                "pid": self.child.pid,
                "base_url": f"http://127.0.0.1:{port}/v1",
                "model_name": self.settings["model_name"],
                "model_path": self.model,
                "api_key": key,
                "log": rel(self.log),
                "log_dir": rel(serve_log_dir),
                "started": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": command,
            }
            write_json(self.state_file, state, mode=0o600)  # before waiting: a crash meanwhile can still stop it
            try:
                self._wait(state)
            except DemoError:
                self.stop(quiet=True)
                if attempt == 0 and "address already in use" in tail(self.log, 40).lower():
                    continue  # someone took the free port between our look and its bind
                raise
            except BaseException:  # Ctrl-C while it starts: leave nothing running
                self.stop(quiet=True)
                raise
            state["parts"] = {
                role: {"pid": int(pid), "port": int(p)} for role, pid, p in PART_LINE.findall(tail(self.log, 40))
            }
            write_json(self.state_file, state, mode=0o600)
            return state
        raise AssertionError("unreachable")

    def _wait(self, state: dict) -> None:
        deadline = time.monotonic() + float(self.settings["startup_timeout_s"])
        while True:
            code = self.child.poll()
            if code is not None:
                raise DemoError(
                    f"the teacher (serve up, pid {state['pid']}) exited with code {code} while starting", self.log
                )
            if self.answers(state):
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the teacher did not answer at {state['base_url']} within {self.settings['startup_timeout_s']} s",
                    self.log,
                )
            time.sleep(0.5)

    def stop(self, quiet: bool = False) -> str:
        """Stop the teacher by PID: SIGTERM to its group (serve up then stops its parts), SIGKILL if it lingers."""
        state = self.state()
        if state is None:
            self.state_file.unlink(missing_ok=True)
            if not quiet:
                self.say("  no teacher was running")
            return "no teacher was running"
        pid = state["pid"]
        needles = self.needles(state)
        child = self.child if self.child is not None and self.child.pid == pid else None
        message = f"no teacher was running (pid {pid} is gone, or is not a teacher)"
        if process_alive(pid, needles) or (child is not None and child.poll() is None):
            signal_group(pid, signal.SIGTERM)
            if not wait_gone(pid, needles, float(self.settings["stop_timeout_s"]), child):
                signal_group(pid, signal.SIGKILL)
                wait_gone(pid, needles, 5, child)
            message = f"stopped the teacher (serve up, pid {pid})"
        # `serve up` stops its parts on SIGTERM; make sure, part by part, each by its own PID.
        for role, part in (state.get("parts") or {}).items():
            if not (isinstance(part, dict) and isinstance(part.get("pid"), int) and isinstance(part.get("port"), int)):
                continue
            part_needles = (b"serve.", f"--port\0{part['port']}\0".encode())
            if process_alive(part["pid"], part_needles):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(part["pid"], signal.SIGTERM)
                if not wait_gone(part["pid"], part_needles, 10):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(part["pid"], signal.SIGKILL)
                message += f"; {role} (pid {part['pid']}) needed its own SIGTERM"
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
            self.child = None
        self.state_file.unlink(missing_ok=True)
        if not quiet:
            self.say(f"  {message}")
        return message


# ------------------------------------------------------------------------------------------ the run
@dataclass
class StepResult:
    step: str
    status: str  # done, reused, skipped, failed
    seconds: float
    note: str = ""


@dataclass
class Demo:
    config: dict
    console: Console
    force: set[str] = field(default_factory=set)
    command: str = "all"
    results: list[StepResult] = field(default_factory=list)

    def __post_init__(self):
        self.log_dir = at_root(self.config["log_dir"])
        self.teacher = Teacher(self.config, self.log_dir, self.say)
        self._log: Path | None = None
        self._step_started: float | None = None

    # ---- output
    def say(self, text: str = "", style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def section(self, step: str) -> dict:
        return self.config["steps"][step]

    def stamp_path(self, step: str) -> Path:
        return self.log_dir / f"{step}.json"

    def log_path(self, step: str) -> Path:
        return self.log_dir / f"{step}.log"

    # ---- tools
    def python(self, env: str = "main") -> str:
        python = ENVS[env].python
        if not python.exists():
            raise DemoError(f"{ENVS[env].directory}: the {env} environment is missing; run `make env env-serve`")
        return rel(python)

    def run(self, command: list[str], env: dict[str, str] | None = None) -> None:
        """Run one tool from the repository root, its output appended to the step's log."""
        log = self._log
        with open(log, "ab") as out:
            out.write(f"\n$ {shlex.join(command)}\n".encode())
            out.flush()
            code = subprocess.run(
                command, cwd=ROOT, env=tool_env(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            ).returncode
        if code != 0:
            python = Path(command[0]).name.startswith("python")
            shown = shlex.join(["python", *command[1:]] if python else command)
            raise DemoError(f"`{shown}` exited with status {code}", log)

    # ---- steps
    def plan(self, step: str) -> list[str]:
        """The step and what it needs, upstream first."""
        order: list[str] = []

        def visit(name: str) -> None:
            for need in NEEDS[name]:
                visit(need)
            if name not in order:
                order.append(name)

        visit(step)
        return [s for s in ORDER if s in order]

    def release_teacher(self) -> None:
        """Stop the teacher (by PID, with its process group) and note it in the teacher step's result."""
        if not self.teacher.state_file.exists():
            return
        message = self.teacher.stop()
        for result in self.results:
            if result.step == "teacher" and result.status in ("done", "reused") and message.startswith("stopped"):
                result.note += ", stopped"

    def run_step(self, step: str) -> StepResult:
        number = ORDER.index(step) + 1
        self.say()
        self.say(f"[{number}/{len(ORDER)}] {step}: {TITLES[step]}", style="bold")
        if step == "teacher":
            return self._teacher_step()
        section = self.section(step)
        state = freshness(self.stamp_path(step), section)
        report = getattr(self, f"report_{step}")
        if state.fresh and step not in self.force:
            self.say(f"  reused: {state.reason} (DEMO_FORCE=1 redoes it)", style="green")
            report()
            return self._record(StepResult(step, "reused", 0.0, f"first run took {state.stamp.get('seconds', '?')} s"))
        self.say(f"  running ({'forced' if step in self.force else state.reason}); log: {rel(self.log_path(step))}")
        inputs = digest_paths(section.get("inputs", []))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path(step)
        self._log.write_text(f"# demo step {step}, {datetime.datetime.now().isoformat(timespec='seconds')}\n")
        start = self._step_started = time.monotonic()
        try:
            getattr(self, f"do_{step}")()
        except DemoError as err:
            err.log = err.log or self._log
            raise
        except Exception as err:  # a bug, not a tool failure: the traceback goes to the log
            import traceback

            with open(self._log, "a", encoding="utf-8") as out:
                traceback.print_exc(file=out)
            raise DemoError(f"{type(err).__name__}: {err}", self._log) from err
        seconds = time.monotonic() - start
        write_stamp(self.stamp_path(step), step, section, inputs, seconds)
        report()
        self.say(f"  done in {seconds:.1f} s", style="green")
        return self._record(StepResult(step, "done", seconds))

    def elapsed(self) -> float:
        """Seconds since the current step began to run."""
        return time.monotonic() - self._step_started if self._step_started else 0.0

    def _record(self, result: StepResult) -> StepResult:
        self.results.append(result)
        return result

    # ---- 1. teacher
    def _teacher_step(self) -> StepResult:
        start = self._step_started = time.monotonic()
        state = self.teacher.live()
        if state:
            self.say(f"  reused: pid {state['pid']}, {state['base_url']} ({state['model_name']})", style="green")
            return self._record(StepResult("teacher", "reused", 0.0, state["base_url"]))
        data_fresh = freshness(self.stamp_path("data"), self.section("data")).fresh and "data" not in self.force
        if self.command == "all" and data_fresh:
            self.say("  skipped: the data step is up to date, so nothing needs a teacher", style="green")
            return self._record(StepResult("teacher", "skipped", 0.0, "not needed"))
        self.say(f"  starting `serve up` with {self.config['teacher']}; log: {rel(self.teacher.log)}")
        try:
            state = self.teacher.start()
        except DemoError as err:
            err.log = err.log or self.teacher.log
            raise
        seconds = time.monotonic() - start
        self.say(
            f"  up: pid {state['pid']}, {state['base_url']} (model {state['model_name']}, API key in {rel(self.teacher.state_file)})"
        )
        self.say(f"  stack logs: {state['log_dir']}/; stop it with `make demo-stop`")
        self.say(f"  done in {seconds:.1f} s", style="green")
        return self._record(StepResult("teacher", "done", seconds, state["base_url"]))

    # ---- 2. data
    def llm_settings(self, cfg: dict, folder: Path) -> Path:
        """The LLM stages' settings (data_prep/llm/settings.yaml) with the demo's overrides, written to folder."""
        import yaml

        base = at_root(cfg["llm_settings_base"])
        try:
            settings = yaml.safe_load(base.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise DemoError(f"{rel(base)}: cannot read the LLM stages' settings ({type(err).__name__})") from None
        for section, values in cfg.get("llm_settings", {}).items():
            if not isinstance(settings.get(section), dict) or not set(values) <= set(settings[section]):
                unknown = sorted(set(values) - set(settings.get(section) or {}))
                raise DemoError(f"demo/demo.yaml: steps.data.llm_settings.{section}: not in {rel(base)}: {unknown}")
            settings[section].update(values)
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "settings.yaml"
        out.write_text(
            f"# {rel(base)} with the overrides of demo/demo.yaml (steps.data.llm_settings); written by the demo.\n"
            + yaml.safe_dump(settings, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
        return out

    def do_data(self) -> None:
        cfg = self.section("data")
        require_model(self.config["model"], "the small MoE")
        state, started_here = self.teacher.live(), False
        if state is None:
            self.say(f"  no teacher running: starting one for this step (log: {rel(self.teacher.log)})")
            state, started_here = self.teacher.start(), True
        try:
            self.say(f"  teacher: {state['base_url']} ({state['model_name']}, pid {state['pid']})")
            llm_out = at_root(cfg["llm_out"])
            for run in ("translate", "synthesize"):
                shutil.rmtree(llm_out / run, ignore_errors=True)  # a forced re-run starts clean (the call cache stays)
            settings = self.llm_settings(cfg, llm_out)
            endpoint = {"BIMEDIX_LLM_BASE_URL": state["base_url"], "BIMEDIX_LLM_MODEL": state["model_name"]}
            endpoint["BIMEDIX_LLM_API_KEY"] = state.get("api_key") or "EMPTY"
            endpoint["BIMEDIX_LLM_ENDPOINT"] = ""  # the variables above, not an endpoint file from the caller's shell
            common = ["--input", cfg["llm_input"], "--format", cfg["llm_format"], "--settings", rel(settings)]
            common += ["--keep-unverified", "--cache", rel(llm_out / "cache.sqlite"), "--no-progress"]
            for run in ("synthesize", "translate"):
                limit = int(cfg["limits"][run])
                self.say(
                    f"  {run}: {limit} item{'s' if limit != 1 else ''} of {cfg['llm_input']} through the teacher ..."
                )
                self.run(
                    [self.python(), "-m", "data_prep.llm", run, *common, "--limit", str(limit), "--out",
                     rel(llm_out / run)], env=endpoint
                )  # fmt: skip
        finally:
            if started_here:
                self.teacher.stop()
        self.say(f"  building the bilingual mix {cfg['mix']} (only what passed the checks) ...")
        self.run(
            [self.python(), "-m", "data_prep", "build", "--mix", cfg["mix"], "--out", cfg["processed"],
             "--tokenizer", self.config["model"]]
        )  # fmt: skip

    def report_data(self) -> None:
        cfg = self.section("data")
        llm_out = at_root(cfg["llm_out"])
        chats = read_json(llm_out / "synthesize" / "manifest.json") or {}
        outputs = chats.get("outputs", {})
        self.say(
            f"  chat synthesis: {_counts(chats.get('items', {}))}: "
            f"{outputs.get('chats.jsonl', {}).get('rows', 0)} passed validation (trained on), "
            f"{outputs.get('chats_unverified.jsonl', {}).get('rows', 0)} failed (kept unverified, not trained on) "
            f"-> {rel(llm_out / 'synthesize')}/"
        )
        reasons = _reasons(llm_out / "synthesize" / "chats_unverified.jsonl")
        if reasons:
            self.say(f"    why chats failed: {reasons}")
        translated = read_json(llm_out / "translate" / "manifest.json") or {}
        outputs = translated.get("outputs", {})
        self.say(
            f"  translation to Arabic: {_counts(translated.get('items', {}))}: "
            f"{outputs.get('translated.jsonl', {}).get('rows', 0)} passed QA (trained on), "
            f"{outputs.get('unverified.jsonl', {}).get('rows', 0)} failed (kept unverified, not trained on) "
            f"-> {rel(llm_out / 'translate')}/"
        )
        reasons = _reasons(llm_out / "translate" / "ledger.jsonl")
        if reasons:
            self.say(f"    why translations failed: {reasons}")
        self.say(f"  {cfg['translation_note']}", style="yellow")
        variant = at_root(cfg["processed"]) / "bilingual"
        manifest = read_json(variant / "manifest.json") or {}
        counts, ratio = manifest.get("counts", {}), manifest.get("ratio", {})
        llm = [s for s in manifest.get("sources", []) if s.get("name", "").endswith("_llm")]
        used = ", ".join(f"{s['name']} {s['counts']['written']}/{s['counts']['read']}" for s in llm)
        self.say(f"  teacher items in the mix (written/read): {used or 'none'}")
        self.say(
            f"  bilingual mix: train {counts.get('train', '?')}, val {counts.get('val', '?')}, "
            f"by language {_counts(counts.get('by_language', {}))}, Arabic:English "
            f"{ratio.get('records', {}).get('as_ar_to_en', '?')} by records -> {rel(variant)}/"
        )

    # ---- 3. train
    def _run_dir(self) -> Path:
        cfg = self.section("train")
        return at_root(cfg["output_root"]) / cfg["recipe"]

    def do_train(self) -> None:
        cfg = self.section("train")
        require_model(self.config["model"], "the small MoE")
        common = [cfg["recipe"], "--base-model", self.config["model"], "--data-dir", cfg["data_dir"]]
        common += ["--output-root", cfg["output_root"]]
        self.say(f"  axolotl train (recipes/{cfg['recipe']}/qlora.yaml) on {cfg['data_dir']}/processed/bilingual ...")
        self.run([self.python(), "-m", "recipes", "train", *common])
        self.say("  axolotl merge-lora --merge-method legacy (keeps the expert and router LoRA) ...")
        self.run([self.python(), "-m", "recipes", "merge", *common])

    def report_train(self) -> None:
        run_dir = self._run_dir()
        text = ""
        with contextlib.suppress(OSError):
            text = (run_dir / "train.log").read_text(encoding="utf-8", errors="replace")
        trainable = re.findall(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)", text)
        losses = re.findall(r"\{'loss': '([\d.]+)'", text)
        evals = re.findall(r"'eval_loss': '([\d.]+)'", text)
        runtime = re.findall(r"'train_runtime': '([\d.]+)'", text)
        spec = read_json(at_root(self.config["model"]) / "config.json") or {}
        facts = []
        if trainable:
            facts.append(
                f"{trainable[-1][0]} trainable parameters of {trainable[-1][1]} "
                f"(attention, {spec.get('num_local_experts', '?')} experts, router)"
            )
        if losses:
            first, last = [float(x) for x in losses[:10]], [float(x) for x in losses[-10:]]
            facts.append(
                f"{len(losses)} steps, training loss {sum(first) / len(first):.3f} over the first {len(first)}, "
                f"{sum(last) / len(last):.3f} over the last {len(last)}"
            )
        if len(evals) >= 2:
            facts.append(f"held-out loss {evals[0]} before, {evals[-1]} after")
        if runtime:
            facts.append(f"{float(runtime[-1]):.0f} s of training")
        self.say(f"  trained: {'; '.join(facts) or 'see ' + rel(run_dir / 'train.log')}")
        self.say(f"  adapter: {rel(run_dir / 'adapter')}/   merged model: {rel(run_dir / 'merged')}/")

    # ---- 4. eval
    def _runs(self) -> dict[str, Path]:
        results = at_root(self.section("eval")["results_dir"])
        return {"base": results / "base", "tuned": results / "tuned", "tables": results / "tables"}

    def do_eval(self) -> None:
        cfg = self.section("eval")
        merged = self._run_dir() / "merged"
        for run, model in (("base", self.config["model"]), ("tuned", rel(merged))):
            self.say(f"  {run}: {model} on {cfg['tasks']} (embedded sample data) ...")
            self.run(
                [self.python(), "-m", "eval_tasks", "run", "--model", model, "--tasks", cfg["tasks"], "--results-dir",
                 cfg["results_dir"], "--run-name", run, "--batch-size", str(cfg["batch_size"]), "--device", "cpu"]
            )  # fmt: skip
        runs = self._runs()
        labels = [arg for run in ("base", "tuned") for arg in ("--label", cfg["labels"][run])]
        self.run(
            [self.python(), "-m", "eval_tasks", "tables", rel(runs["base"]), rel(runs["tuned"]), "--out",
             rel(runs["tables"]), *labels]
        )  # fmt: skip

    def report_eval(self) -> None:
        cfg = self.section("eval")
        tables = self._runs()["tables"]
        try:
            text = (tables / "tables.md").read_text(encoding="utf-8")
        except OSError:
            self.say(f"  (no tables in {rel(tables)})")
            return
        sections: list[list[str]] = []
        for line in text.splitlines():
            if line.startswith("## Runs"):
                break
            if line.startswith("##"):
                sections.append([line.lstrip("# ")])
            elif line.startswith("|") and sections:
                sections[-1].append(line)
        labels = [cfg["labels"][run] for run in ("base", "tuned")]
        for title, *rows in sections:
            ours = [row for row in rows if any(f"| {label} " in row for label in labels)]
            if ours and all(map(has_scores, ours)):  # a table of tasks this run did not score: skipped
                self.say(f"\n  {title}")
                for row in rows:
                    self.say(f"  {row}")
        self.say(f"\n  {cfg['note']}", style="yellow")
        self.say(
            f"  tables: {rel(tables / 'tables.md')}, {rel(tables)}/table_*.csv; chart: {rel(tables / 'tables.png')}"
        )

    # ---- 5. serve
    def do_serve(self) -> None:
        import openai

        from serve.config import ServeError
        from serve.stack import ServeStack

        cfg = self.section("serve")
        merged = self._run_dir() / "merged"
        require_model(rel(merged), "the fine-tuned model")
        self.say("  checking that FastChat's prompts equal the model's chat template, token for token ...")
        self.run([self.python("serve"), "-m", "serve", "check", "--model", rel(merged)])
        env = {k: str(v) for k, v in cfg.get("env", {}).items()}
        self.say(f"  starting FastChat (controller, worker, OpenAI API) on {rel(merged)}; logs: {cfg['log_dir']}/")
        answers = []
        try:
            stack = ServeStack(
                merged,
                model_name=cfg["model_name"],
                api_keys=[secrets.token_hex(16)],  # loopback only, but the machine is shared
                log_dir=at_root(cfg["log_dir"]),
                env=env,
            )
            with stack:
                with open(self._log, "a", encoding="utf-8") as out:
                    out.write(stack.describe() + "\n")
                client = openai.OpenAI(base_url=stack.api_base, api_key=stack.api_key or "none", timeout=600)
                for question in cfg["questions"]:
                    reply = client.chat.completions.create(
                        model=stack.model_name,
                        messages=[
                            *([{"role": "system", "content": question["system"]}] if "system" in question else []),
                            {"role": "user", "content": question["text"]},
                        ],
                        max_tokens=int(cfg["max_tokens"]),
                        temperature=0,
                    )
                    answers.append({**question, "answer": reply.choices[0].message.content or ""})
        except ServeError as err:
            raise DemoError(str(err).splitlines()[0], self._log) from err
        except openai.OpenAIError as err:
            raise DemoError(f"the OpenAI API call failed: {type(err).__name__}: {err}", self._log) from err
        for item in answers:
            if item["language"] == "English":
                item["prose"] = prose_check(item["answer"], cfg["prose"])
        record = {
            "notice": self.config["notice"],
            "model": rel(merged),
            "model_name": cfg["model_name"],
            "api": "POST /v1/chat/completions (openai client), temperature 0",
            "max_tokens": cfg["max_tokens"],
            "answers": answers,
        }
        write_json(at_root(cfg["answers"]), record)
        self.say("  stopped the stack")
        failed = [a for a in answers if "prose" in a and not a["prose"]["ok"]]
        if failed:
            self.report_serve()
            raise DemoError(
                f"the served {failed[0]['language']} answer is not {failed[0]['language']} prose "
                f"({failed[0]['prose']['why']}); answers in {cfg['answers']}"
            )

    def report_serve(self) -> None:
        cfg = self.section("serve")
        record = read_json(at_root(cfg["answers"])) or {}
        for item in record.get("answers", []):
            self.say(f"  Q ({item['language']}): {item['text']}")
            self.say(f"  A: {printable(item['answer'], 600)}")
            if "prose" in item:
                verdict = "yes" if item["prose"]["ok"] else "NO"
                self.say(f"     {item['language']} prose: {verdict} ({item['prose']['why']})")
        self.say(f"  {self.config['notice']}", style="bold yellow")
        self.say(f"  answers: {rel(at_root(cfg['answers']))}")
        self.say(
            f"  Chat in the browser: `make serve MODEL={rel(self._run_dir() / 'merged')} MODEL_NAME={cfg['model_name']}` "
            "prints the web UI's address (127.0.0.1); Ctrl-C stops it."
        )

    # ---- status
    def status(self) -> None:
        for step in ORDER:
            if step == "teacher":
                state = self.teacher.live()
                self.say(
                    f"  teacher  {'running: ' + state['base_url'] + ' pid ' + str(state['pid']) if state else 'not running'}"
                )
                continue
            fresh = freshness(self.stamp_path(step), self.section(step))
            self.say(f"  {step:<8} {'up to date' if fresh.fresh else 'to run'}: {fresh.reason}")

    def summary(self, total_s: float) -> None:
        from rich.table import Table

        table = Table(title=None, show_edge=False, pad_edge=False, box=None)
        for column in ("step", "status", "seconds", "where"):
            table.add_column(column, justify="right" if column == "seconds" else "left")
        where = {s: ", ".join(self.section(s).get("outputs", [])) for s in ORDER}
        where["teacher"] = ""
        where["eval"] = f"{self.section('eval')['results_dir']}/ (tables/tables.md, tables/tables.png)"
        for result in self.results:
            note = where.get(result.step, "") if result.status in ("done", "reused") else result.note
            if result.step == "teacher":
                note = result.note
            table.add_row(result.step, result.status, f"{result.seconds:.1f}", note)
        self.say()
        self.say("Summary", style="bold")
        self.console.print(table, soft_wrap=True)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        verdict = "stopped" if any(r.status in ("failed", "interrupted") for r in self.results) else "finished"
        self.say(
            f"demo {verdict} after {total_s:.1f} s (load average {load}); step logs and stamps: {rel(self.log_dir)}/"
        )


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"


def _reasons(path: Path, limit: int = 4) -> str:
    """The commonest reasons the LLM stages gave for items that failed their checks, counted once per item.

    Reads a JSON lines file whose rows carry `reasons` (translate's ledger) or `provenance.reasons`
    (synthesize's unverified chats); a reason reads `[segment: ]what failed[: details]`.
    """
    from collections import Counter

    counted: Counter[str] = Counter()
    items = 0
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                row = json.loads(line)
                reasons = row.get("reasons") or (row.get("provenance") or {}).get("reasons") or []
                keys = set()
                for reason in map(str, reasons):
                    head, _, rest = reason.partition(": ")
                    text = (
                        rest
                        if rest and re.fullmatch(r"[\w:]+", head) and not head.startswith(("no ", "the "))
                        else reason
                    )
                    keys.add(re.split(r"[:'(⟦;]", text)[0].strip())
                counted.update(keys)
                items += 1
    return "; ".join(f"{reason} ({n} of {items})" for reason, n in counted.most_common(limit))


def prose_check(text: str, rules: dict) -> dict:
    """Whether an answer reads as prose in Latin script: enough words, mostly Latin letters, not one word
    repeated, and some of the language's commonest words. Returns ok and the measured facts."""
    words = re.findall(r"[^\W\d_]+", text)
    letters = [c for c in text if c.isalpha()]
    latin = sum("LATIN" in unicodedata.name(c, "") for c in letters) / max(len(letters), 1)
    lowered = [w.lower() for w in words]
    distinct = len(set(lowered)) / max(len(lowered), 1)
    common = sorted(set(lowered) & set(rules["function_words"]))
    problems = []
    if len(words) < rules["min_words"]:
        problems.append(f"{len(words)} words < {rules['min_words']}")
    if latin < rules["min_latin_share"]:
        problems.append(f"Latin letters {latin:.0%} < {rules['min_latin_share']:.0%}")
    if distinct < rules["min_distinct_share"]:
        problems.append(f"distinct words {distinct:.0%} < {rules['min_distinct_share']:.0%}")
    if len(common) < rules["min_function_words"]:
        problems.append(f"{len(common)} of its commonest words < {rules['min_function_words']}")
    facts = f"{len(words)} words, {latin:.0%} Latin letters, {distinct:.0%} distinct words, common words {common[:6]}"
    return {
        "ok": not problems,
        "why": "; ".join(problems) or facts,
        "words": len(words),
        "latin_share": round(latin, 3),
    }


# ------------------------------------------------------------------------------------------ command line
@contextlib.contextmanager
def exclusive(log_dir: Path) -> Iterator[None]:
    """One demo command at a time in this checkout (they share logs/demo and the teacher)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoError(f"another demo command is running in this checkout ({rel(log_dir / '.lock')})") from None
        yield


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def failure_line(step: str | None, err: DemoError) -> str:
    """The one line a failure ends with: the step, what failed, and the log to read."""
    if isinstance(err, Interrupted):
        return f"error: demo interrupted{f' during step {step!r}' if step else ''}: {err}"
    if step is None:
        return f"error: {err}"
    log = f"; its log: {rel(err.log)}" if err.log else ""
    return f"error: demo step '{step}' failed: {err}{log}"


def show_tail(console: Console, err: DemoError) -> None:
    if err.log and err.log.exists():
        console.print(f"\nlast lines of {rel(err.log)}:", markup=False, highlight=False, style="dim")
        console.print(tail(err.log), markup=False, highlight=False, soft_wrap=True)


def clean(demo: Demo) -> None:
    demo.teacher.stop()
    targets = demo.config.get("clean", [])
    for target in targets:
        shutil.rmtree(at_root(target), ignore_errors=True)
    for item in demo.log_dir.iterdir():
        if item.name != ".lock":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    demo.say(f"removed {', '.join(targets)} and {rel(demo.log_dir)}/ (the models and the environments stay)")


def execute(demo: Demo, command: str) -> tuple[str | None, DemoError | None]:
    """Run one command; returns the step that failed (None: not a step) and the error, if any."""
    current: str | None = None
    started = time.monotonic()
    try:
        if command == "stop":
            demo.say(demo.teacher.stop(quiet=True))
        elif command == "status":
            demo.status()
        elif command == "clean":
            clean(demo)
        else:
            if command == "all":
                demo.say("BiMediX demo: the whole recipe at small scale, offline, on this machine's CPU.", style="bold")
                demo.say(f"Research software, never for clinical decisions. {demo.config['notice']}", style="yellow")
            for step in list(ORDER) if command == "all" else demo.plan(command):
                current = step
                demo.run_step(step)
                if command == "all" and step == "data":
                    demo.release_teacher()  # only the data step uses it: its 1.5 GB and its CPU go back
        return None, None
    except DemoError as err:
        if current is not None:
            demo.results.append(StepResult(current, "failed", demo.elapsed(), rel(err.log) if err.log else ""))
        show_tail(demo.console, err)
        return current, err
    except KeyboardInterrupt:
        if current is not None:
            demo.results.append(StepResult(current, "interrupted", demo.elapsed()))
        return current, Interrupted("Ctrl-C or SIGTERM; finished steps keep their stamps")
    finally:
        if command == "all":
            with contextlib.suppress(Exception, KeyboardInterrupt):
                if demo.teacher.state_file.exists():
                    demo.say("\nstopping the teacher (the demo always does, also after a failure) ...")
                    demo.release_teacher()
            demo.summary(time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=[*ORDER, "all", "stop", "status", "clean"])
    parser.add_argument(
        "--force", action="store_true", help="run the step again even when it is up to date (all: every step)"
    )
    parser.add_argument("--model", default=str(SMALL_MODEL_DIR), help="the small MoE's folder (make: SMALL_MODEL)")
    parser.add_argument(
        "--teacher", default=str(SMALL_TEACHER_DIR), help="the teacher model's folder (make: SMALL_TEACHER)"
    )
    parser.add_argument("--config", default=str(CONFIG_FILE), help="the demo's settings (default: demo/demo.yaml)")
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    try:
        config = load_config(Path(args.config), args.model, args.teacher)
    except DemoError as err:
        console.print(failure_line(None, err), markup=False, style="bold red")
        return 2
    force = set(ORDER) if args.force and args.command == "all" else ({args.command} if args.force else set())
    demo = Demo(config, console, force=force, command=args.command)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a `kill` of the demo still stops the teacher
    try:
        with exclusive(demo.log_dir):  # and only the holder of the lock touches the teacher
            step, failed = execute(demo, args.command)
    except DemoError as err:
        step, failed = None, err
    if failed is None:
        return 0
    console.print(failure_line(step, failed), markup=False, highlight=False, style="bold red")
    return 130 if isinstance(failed, Interrupted) else 1


if __name__ == "__main__":
    sys.exit(main())
