"""Create the project's pinned virtual environments from their lock files, and re-lock them.

Runs with the system Python 3.11 (standard library only), before any environment exists:

    python3 -m bimedix.envs ensure main     # create .venv from requirements/main.lock if needed
    python3 -m bimedix.envs ensure serve    # create .venv-serve from requirements/serve.lock
    python3 -m bimedix.envs lock main       # resolve requirements/main.in into main.lock

An environment is up to date when its stamp file holds the sha256 of its lock file; a changed
lock file rebuilds the environment from scratch, so it never carries packages the lock dropped.
torch is installed first and on its own (`pip install torch==2.13.0`): on a CPU host pip takes
the CPU wheel, on a GPU host the CUDA one; the rest installs with --no-deps from the lock, which
holds the whole resolved closure, then `pip check` proves it consistent.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_PIN = "torch==2.13.0"
STAMP = ".bimedix-lock.sha256"


@dataclass(frozen=True)
class Env:
    name: str
    directory: str
    requirements: str  # the human-edited direct requirements
    lock: str  # the resolved closure that installs

    @property
    def path(self) -> Path:
        return ROOT / self.directory

    @property
    def lock_path(self) -> Path:
        return ROOT / self.lock

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


ENVS = {
    "main": Env("main", ".venv", "requirements/main.in", "requirements/main.lock"),
    "serve": Env("serve", ".venv-serve", "requirements/serve.in", "requirements/serve.lock"),
}


class EnvError(RuntimeError):
    pass


def lock_digest(env: Env) -> str:
    return hashlib.sha256(env.lock_path.read_bytes()).hexdigest()


def is_current(env: Env) -> bool:
    stamp = env.path / STAMP
    return env.python.exists() and stamp.exists() and stamp.read_text().strip() == lock_digest(env)


# pip repeats this for every package when an extra index in pip.conf lacks it; it is noise.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$")


def _run(cmd: list[str | os.PathLike], **kwargs) -> subprocess.CompletedProcess:
    printable = " ".join(str(c) for c in cmd)
    print(f"+ {printable}", flush=True)
    result = subprocess.run([str(c) for c in cmd], stderr=subprocess.PIPE, text=True, **kwargs)
    for line in result.stderr.splitlines():
        if not _PIP_NOISE.match(line):
            print(line, file=sys.stderr)
    if result.returncode != 0:
        raise EnvError(f"command failed ({result.returncode}): {printable}")
    return result


def _pip(python: Path, *args: str | os.PathLike, **kwargs) -> subprocess.CompletedProcess:
    return _run([python, "-m", "pip", "--disable-pip-version-check", *args], **kwargs)


def _new_venv(path: Path) -> Path:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    _run([sys.executable, "-m", "venv", path])
    python = path / "bin" / "python"
    _pip(python, "install", "--quiet", TORCH_PIN)
    return python


def ensure(env: Env) -> None:
    if not env.lock_path.exists():
        raise EnvError(f"{env.lock}: lock file missing; run `make lock` to create it")
    env.path.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / f"{env.directory}.building", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two make targets in parallel build it once
        if is_current(env):
            return
        start = time.monotonic()
        print(f"Creating the {env.name} environment in {env.directory} from {env.lock} ...", flush=True)
        python = _new_venv(env.path)
        _pip(python, "install", "--quiet", "--no-deps", "-r", env.lock_path)
        _pip(python, "check")
        (env.path / STAMP).write_text(lock_digest(env) + "\n")
        minutes = (time.monotonic() - start) / 60
        print(f"{env.name} environment ready in {minutes:.1f} min: {env.directory}", flush=True)


_LOCAL_VERSION = re.compile(r"^(torch==[^+\s]+)\+\S+$")


def normalise_freeze(freeze: str) -> list[str]:
    """pip freeze lines -> lock lines: no local build tags (torch 2.13.0+cpu -> torch==2.13.0), sorted."""
    lines = []
    for line in freeze.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("-e "):
            continue
        match = _LOCAL_VERSION.match(line)
        lines.append(match.group(1) if match else line)
    return sorted(lines, key=str.lower)


def lock(env: Env) -> None:
    """Resolve env.requirements in a scratch venv and write the exact closure to env.lock."""
    with tempfile.TemporaryDirectory(prefix=f"bimedix-lock-{env.name}-") as scratch:
        python = _new_venv(Path(scratch) / "venv")
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text(TORCH_PIN + "\n")
        _pip(python, "install", "--quiet", "-c", constraints, "-r", ROOT / env.requirements)
        _pip(python, "check")
        freeze = _pip(python, "freeze", stdout=subprocess.PIPE).stdout
    header = [
        f"# {env.lock}: the resolved closure of {env.requirements}, written by `make lock`.",
        f"# Python {sys.version_info.major}.{sys.version_info.minor}, Linux x86_64. Installs with",
        f"# `pip install {TORCH_PIN}` first, then `pip install --no-deps -r {env.lock}`.",
    ]
    env.lock_path.write_text("\n".join(header + normalise_freeze(freeze)) + "\n")
    print(f"wrote {env.lock}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bimedix.envs", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["ensure", "lock", "python"])
    parser.add_argument("env", choices=sorted(ENVS))
    args = parser.parse_args(argv)
    env = ENVS[args.env]
    try:
        if args.action == "ensure":
            ensure(env)
        elif args.action == "lock":
            lock(env)
        else:
            print(env.python)
    except EnvError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
