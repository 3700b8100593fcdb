"""The project's two virtual environments, made and locked with uv; what uv does not do is here.

Runs with the system Python (standard library only), before any environment exists:

    python3 -m bimedix.envs ensure main     # .venv from requirements/main.lock, if it is not current
    python3 -m bimedix.envs ensure serve    # .venv-serve from requirements/serve.lock
    python3 -m bimedix.envs lock main       # re-resolve requirements/main.in (--upgrade: newest releases)
    python3 -m bimedix.envs check           # every lock, resolved again against the package index alone
    python3 -m bimedix.envs uv              # the path of the pinned uv (installed on first use)

uv itself is a wheel on the package index, pinned with its sha256 in requirements/uv.txt and installed
with the system Python's pip into .uv/ (no installer script). Each lock is `uv pip compile --universal`
output with every wheel's sha256 (the index's CUDA torch and its nvidia wheels are part of it, behind
markers), and an environment is `uv pip sync` of it: exactly the lock, from uv's cache when a wheel
was downloaded before. requirements/excluded.txt names dependencies no lock holds (`--excludes`).

What stays here: the supported-Python guard (and finding that Python), the stamp that says an
environment is current, `uv pip check` forgiving exactly the excluded names, the drift check of
the shipped locks, and one speed-up for machines that carry a CPU wheel of the locked torch in a
local folder (PIP_FIND_LINKS or UV_FIND_LINKS): that wheel replaces the index's CUDA build, and the
packages only the CUDA build needs are left out.
"""

from __future__ import annotations

import argparse
import difflib
import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
UV_REQUIREMENT = REQUIREMENTS / "uv.txt"
EXCLUDED = REQUIREMENTS / "excluded.txt"
UV_HOME = ROOT / ".uv"
STAMP = ".bimedix-lock.sha256"
# axolotl 0.20 and newer require Python 3.12 (Requires-Python >=3.12); the locks are resolved for it.
SUPPORTED_PYTHONS = ((3, 12),)
# uv settings the lock and the check must not inherit from the caller: another index, local wheels.
_INDEX_VARIABLES = (
    "UV_INDEX", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_NO_INDEX",
    "UV_CONSTRAINT", "UV_OVERRIDE", "UV_OFFLINE", "UV_CONFIG_FILE",
)  # fmt: skip


@dataclass(frozen=True)
class Env:
    name: str
    directory: str
    requirements: str  # the human-edited direct requirements
    lock: str  # what installs: the resolved closure with hashes
    # packages whose version must equal the main lock's (the served model computes what training did)
    same_as_main: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return ROOT / self.directory

    @property
    def lock_path(self) -> Path:
        return ROOT / self.lock

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


MODEL_STACK = ("torch", "transformers", "tokenizers", "peft", "accelerate", "safetensors", "huggingface-hub")
ENVS = {
    "main": Env("main", ".venv", "requirements/main.in", "requirements/main.lock"),
    "serve": Env("serve", ".venv-serve", "requirements/serve.in", "requirements/serve.lock", MODEL_STACK),
}


class EnvError(RuntimeError):
    pass


def require_supported_python(version: tuple[int, ...]) -> None:
    if tuple(version[:2]) not in SUPPORTED_PYTHONS:
        names = " or ".join(f"{major}.{minor}" for major, minor in SUPPORTED_PYTHONS)
        raise EnvError(
            f"Python {version[0]}.{version[1]} is not supported: the lock files are resolved for Python {names} "
            f"(axolotl 0.20 and newer need 3.12); run make with PYTHON=python3.12"
        )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        probe = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True
        )
    except OSError:
        return None
    parts = probe.stdout.split()
    return (int(parts[0]), int(parts[1])) if probe.returncode == 0 and len(parts) == 2 else None


def find_python(chosen: str = "") -> tuple[str, tuple[int, int]]:
    """The interpreter to make environments with: `chosen` (make's PYTHON, when the user set it), which
    must be a supported one; else python3.12 on PATH, else one under pyenv's versions."""
    if chosen:
        version = _version_of(chosen)
        if version is None:
            raise EnvError(f"PYTHON={chosen}: not a Python interpreter that runs")
        require_supported_python(version)
        return chosen, version
    for major, minor in SUPPORTED_PYTHONS:
        name = f"python{major}.{minor}"
        pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
        candidates = [shutil.which(name)] if shutil.which(name) else []
        candidates += sorted(glob.glob(f"{pyenv_root}/versions/{major}.{minor}.*/bin/{name}"), reverse=True)
        for candidate in candidates:
            if _version_of(candidate) == (major, minor):
                return candidate, (major, minor)
    names = " or ".join(f"python{major}.{minor}" for major, minor in SUPPORTED_PYTHONS)
    raise EnvError(f"no {names} on PATH or under pyenv; install one, or run make with PYTHON=/path/to/{names}")


# --------------------------------------------------------------------------------------------------
# uv, pinned


# pip repeats this for every package when an extra index in its config lacks it; it is noise.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$")


def _run(cmd: list, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command, printing it and its stderr (less pip's noise); EnvError when it fails."""
    printable = " ".join(str(c) for c in cmd)
    print(f"+ {printable}", flush=True)
    result = subprocess.run([str(c) for c in cmd], env=env, text=True, stderr=subprocess.PIPE, cwd=cwd)
    for line in result.stderr.splitlines():
        if not _PIP_NOISE.match(line):
            print(line, file=sys.stderr)
    if result.returncode != 0:
        raise EnvError(f"command failed ({result.returncode}): {printable}")
    return result


def uv_binary() -> Path:
    """.uv/bin/uv at the version requirements/uv.txt pins (installed with pip, checked by sha256)."""
    uv = UV_HOME / "bin" / "uv"
    wanted = re.search(r"^uv==(\S+)", UV_REQUIREMENT.read_text(), re.MULTILINE)
    if wanted is None:
        raise EnvError(f"{UV_REQUIREMENT.relative_to(ROOT)}: no `uv==VERSION` line")
    with open(ROOT / ".uv.building", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if uv.exists():
            found = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()
            if found[1:2] == [wanted.group(1)]:
                return uv
        if UV_HOME.exists():
            shutil.rmtree(UV_HOME)
        _run([sys.executable, "-m", "venv", UV_HOME])
        _run(
            [UV_HOME / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "install", "--quiet",
             "--no-deps", "--only-binary", ":all:", "--require-hashes", "-r", UV_REQUIREMENT]
        )  # fmt: skip
    return uv


def uv_environ(index_only: bool = False) -> dict[str, str]:
    """What uv runs with: never downloading a Python of its own (a missing Python is an error here, not
    a download from outside the package index); `index_only` also drops local wheel folders and other
    indexes, so a resolution sees what a user's machine sees."""
    environ = dict(os.environ)
    environ["UV_PYTHON_DOWNLOADS"] = "never"
    environ.pop("VIRTUAL_ENV", None)
    if index_only:
        for key in _INDEX_VARIABLES:
            environ.pop(key, None)
        environ["UV_NO_CONFIG"] = "1"
    return environ


# --------------------------------------------------------------------------------------------------
# Lock files: uv's requirements format (`name==version ; marker \` then `--hash=sha256:...` lines,
# then `# via` annotations naming who needs each package).


@dataclass
class Entry:
    name: str
    version: str
    marker: str = ""
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # canonical names (or "-r file") of what requires it

    @property
    def key(self) -> str:
        return canonical(self.name)

    def line(self, hashes: bool = True) -> str:
        head = f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")
        return " \\\n    ".join([head, *(f"--hash={h}" for h in self.hashes)]) if hashes else head


_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def read_lock(path: Path) -> list[Entry]:
    """The entries of a uv lock; a line that is none of its forms is an error naming file:line."""
    entries: list[Entry] = []
    in_via = False
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            if text.startswith("via"):
                in_via = True
                text = text[3:].strip()
            if in_via and entries and text:
                entries[-1].via.append(text if text.startswith("-r") else canonical(text))
            continue
        in_via = False
        if line.startswith("--hash="):
            if not entries:
                raise EnvError(f"{path}:{number}: a hash before any package")
            entries[-1].hashes.append(line.removeprefix("--hash=").rstrip(" \\"))
            continue
        match = _ENTRY.match(line)
        if not match:
            raise EnvError(f"{path}:{number}: not a pinned requirement: {raw!r}")
        entries.append(Entry(match.group(1), match.group(2), (match.group(3) or "").strip()))
    return entries


def excluded_names() -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in EXCLUDED.read_text().splitlines())
    return {canonical(line) for line in lines if line}


# --------------------------------------------------------------------------------------------------
# A local CPU wheel of the locked torch (our CI machines carry one): used instead of the CUDA build.


def cpu_torch_wheel(version: str, python: tuple[int, int]) -> Path | None:
    """torch-<version>+cpu for this Python on Linux x86_64 in a PIP_FIND_LINKS / UV_FIND_LINKS folder."""
    folders = " ".join(os.environ.get(k, "") for k in ("UV_FIND_LINKS", "PIP_FIND_LINKS")).replace(",", " ").split()
    tag = f"cp{python[0]}{python[1]}"
    for folder in folders:
        folder = folder.removeprefix("file://")
        found = sorted(glob.glob(os.path.join(folder, f"torch-{version}+cpu-{tag}-{tag}-*linux*_x86_64.whl")))
        if found:
            return Path(found[-1])
    return None


def wheel_requires(wheel: Path) -> set[str]:
    """The canonical names a wheel's METADATA requires (on Linux: every Requires-Dist without an extra)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8", "replace")
    names = set()
    for line in text.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            names.add(canonical(re.split(r"[\s;<>=!~\[(]", line.split(":", 1)[1].strip(), maxsplit=1)[0]))
    return names


def cuda_only(entries: list[Entry], cpu_requires: set[str]) -> set[str]:
    """The packages a lock holds only for the index's CUDA torch: needed by nothing but torch (whose CPU
    wheel does not require them, `cpu_requires`) and packages already found to be CUDA-only."""
    dropped: set[str] = set()
    changed = True
    while changed:
        changed = False
        for entry in entries:
            needers = set(entry.via)
            if entry.key in dropped or not needers or not needers <= dropped | {"torch"}:
                continue
            if "torch" in needers and entry.key in cpu_requires:
                continue
            dropped.add(entry.key)
            changed = True
    return dropped


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_requirements(env: Env, wheel: Path, scratch: Path) -> Path:
    """The lock with the local CPU wheel as torch (pinned by its own sha256) and without CUDA-only packages."""
    entries = read_lock(env.lock_path)
    dropped = cuda_only(entries, wheel_requires(wheel))
    lines = [e.line() for e in entries if e.key != "torch" and e.key not in dropped]
    lines.append(f"torch @ {wheel.resolve().as_uri()} --hash=sha256:{sha256_of(wheel)}")
    out = scratch / f"{env.name}-cpu.txt"
    out.write_text("\n".join(lines) + "\n")
    return out


# --------------------------------------------------------------------------------------------------
# Building an environment


def env_digest(env: Env, python: tuple[int, int], torch_wheel: Path | None) -> str:
    digest = hashlib.sha256(env.lock_path.read_bytes())
    digest.update(f"python {python[0]}.{python[1]}".encode())
    if torch_wheel is not None:
        digest.update(f"torch wheel {torch_wheel.name}".encode())
    return digest.hexdigest()


def stamp_text(env: Env, python: tuple[int, int], torch_wheel: Path | None) -> str:
    return f"{env_digest(env, python, torch_wheel)} {python[0]}.{python[1]}"


def is_current(env: Env, python: tuple[int, int], torch_wheel: Path | None = None) -> bool:
    """The environment was made from this lock, with this Python (and this local torch wheel)."""
    stamp = env.path / STAMP
    found = stamp.read_text().strip() if stamp.exists() and env.python.exists() else ""
    return found == stamp_text(env, python, torch_wheel)


def check_problems(output: str) -> list[str]:
    """`uv pip check`'s findings, less those about the excluded dependencies (requirements/excluded.txt)."""
    excluded = excluded_names()
    problems = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("The package"):  # "Checked N packages", "Found N incompatibilities"
            continue
        named = re.findall(r"`([A-Za-z0-9._\-]+)", line)
        if not (set(map(canonical, named[1:])) & excluded):
            problems.append(line)
    return problems


def ensure(env: Env, chosen_python: str = "") -> None:
    python, version = find_python(chosen_python)
    if not env.lock_path.exists():
        raise EnvError(f"{env.lock}: lock file missing; run `make lock` to create it")
    with open(ROOT / f"{env.directory}.building", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two make targets in parallel build it once
        torch = next((e for e in read_lock(env.lock_path) if e.key == "torch"), None)
        wheel = cpu_torch_wheel(torch.version, version) if torch else None
        if is_current(env, version, wheel):
            return
        uv = uv_binary()
        start = time.monotonic()
        print(f"Making the {env.name} environment {env.directory} from {env.lock} (Python {version[0]}.{version[1]}, {python}) ...", flush=True)  # fmt: skip
        environ = uv_environ()
        same_python = env.python.exists() and _version_of(str(env.python)) == version
        if not same_python:  # a new venv; otherwise `uv pip sync` turns the old one into exactly the lock
            _run([uv, "venv", "--quiet", "--clear", "--python", python, env.path], env=environ)
        (env.path / STAMP).unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="bimedix-env-") as scratch:
            requirements = env.lock_path
            if wheel is not None:
                print(f"torch: the local CPU wheel {wheel} instead of the index's CUDA build", flush=True)
                requirements = cpu_requirements(env, wheel, Path(scratch))
            _run([uv, "pip", "sync", "--python", env.python, "--require-hashes", requirements], env=environ)
        result = subprocess.run([uv, "pip", "check", "--python", env.python], capture_output=True, text=True, env=environ)  # fmt: skip
        problems = check_problems(result.stdout + result.stderr)
        if problems:
            raise EnvError(f"uv pip check found {len(problems)} problem(s) in {env.directory}: " + "; ".join(problems))
        (env.path / STAMP).write_text(stamp_text(env, version, wheel) + "\n")
        print(f"{env.name} environment ready in {time.monotonic() - start:.0f} s: {env.directory}", flush=True)


# --------------------------------------------------------------------------------------------------
# Locking and checking, against the package index alone


def compile_command(uv: Path, env: Env, output: Path, scratch: Path, upgrade: bool = False, index: tuple = ()) -> list:
    """`uv pip compile` of env.requirements into `output` (whose pins it keeps unless `upgrade`);
    `index`: other index options (the tests' local wheel folder), the package index by default."""
    version = SUPPORTED_PYTHONS[0]
    command = [uv, "pip", "compile", "--quiet", "--universal", "--python-version", f"{version[0]}.{version[1]}"]
    command += [
        "--generate-hashes",
        "--excludes",
        EXCLUDED.relative_to(ROOT),
        "--custom-compile-command",
        f"make lock  (python3 -m bimedix.envs lock {env.name})",
    ]
    if env.same_as_main:  # the main lock's versions of the shared model stack, as constraints
        main = {e.key: e for e in read_lock(ENVS["main"].lock_path)}
        missing = [name for name in env.same_as_main if name not in main]
        if missing:
            raise EnvError(f"{ENVS['main'].lock} lacks {', '.join(missing)}, which {env.lock} must share")
        constraints = scratch / "same-as-main.txt"
        constraints.write_text("\n".join(main[name].line(hashes=False) for name in env.same_as_main) + "\n")
        command += ["--constraints", constraints]
    if upgrade:
        command.append("--upgrade")
    return [*command, *index, "--output-file", output, env.requirements]  # run from ROOT: relative in the annotations


def _stable_text(path: Path, env: Env, scratch: Path) -> None:
    """uv writes the constraints file into the annotations; keep the shipped files free of scratch paths."""
    text = path.read_text()
    text = text.replace(f"-c {scratch / 'same-as-main.txt'}", f"-c {ENVS['main'].lock} (the shared model stack)")
    path.write_text(text)


def _seed(env: Env, output: Path) -> None:
    """The lock's versions as uv's starting point (it keeps a pin that still fits), without the hashes:
    uv would carry a seed file's hashes over, and they must come from the index's files."""
    output.write_text("".join(entry.line(hashes=False) + "\n" for entry in read_lock(env.lock_path)))


def lock(env: Env, upgrade: bool = False, index: tuple = ()) -> None:
    uv = uv_binary()
    with tempfile.TemporaryDirectory(prefix=f"bimedix-lock-{env.name}-") as scratch_dir:
        scratch = Path(scratch_dir)
        output = scratch / Path(env.lock).name
        if env.lock_path.exists():
            _seed(env, output)
        _run(compile_command(uv, env, output, scratch, upgrade, index), env=uv_environ(index_only=True), cwd=ROOT)
        _stable_text(output, env, scratch)
        shutil.copy(output, env.lock_path)
    print(f"wrote {env.lock}")


def drift(shipped: list[Entry], resolved: list[Entry], label: str) -> list[str]:
    """One line per package whose version, marker or hashes differ, or that only one side holds."""
    ours = {(e.key, e.marker): e for e in shipped}
    theirs = {(e.key, e.marker): e for e in resolved}
    problems = []
    for key in sorted(set(ours) | set(theirs)):
        mine, index = ours.get(key), theirs.get(key)
        where = f"{key[0]}" + (f" ; {key[1]}" if key[1] else "")
        if index is None:
            problems.append(f"{label}: pins {where}=={mine.version}, which the index's resolution does not hold")
        elif mine is None:
            problems.append(f"{label}: the index's resolution adds {where}=={index.version}, which the lock lacks")
        elif mine.version != index.version:
            problems.append(f"{label}: pins {where}=={mine.version}, the index resolves {index.version}")
        elif sorted(mine.hashes) != sorted(index.hashes):
            problems.append(f"{label}: {where}=={mine.version}: its sha256 hashes differ from the index's files")
    return problems


def check_one(uv: Path, env: Env, index: tuple = ()) -> list[str]:
    """Resolve env.requirements again (keeping the lock's pins where they still fit) and compare."""
    with tempfile.TemporaryDirectory(prefix=f"bimedix-check-{env.name}-") as scratch_dir:
        scratch = Path(scratch_dir)
        output = scratch / Path(env.lock).name
        _seed(env, output)
        start = time.monotonic()
        command = compile_command(uv, env, output, scratch, index=index)
        result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=uv_environ(index_only=True), cwd=ROOT)  # fmt: skip
        if result.returncode == 0:
            _stable_text(output, env, scratch)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            return [f"{env.lock}: does not resolve against the package index: {' / '.join(lines[-8:])}"]
        problems = drift(read_lock(env.lock_path), read_lock(output), env.lock)
        print(f"{env.lock}: {len(read_lock(output))} packages resolved in {time.monotonic() - start:.1f} s", flush=True)
        if problems and len(problems) > 20:
            problems = [*problems[:20], f"{env.lock}: ... and {len(problems) - 20} more"]
        if not problems and output.read_text() != env.lock_path.read_text():
            diff = difflib.unified_diff(env.lock_path.read_text().splitlines(), output.read_text().splitlines(), lineterm="", n=0)  # fmt: skip
            shown = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")][:6]
            problems.append(f"{env.lock}: differs from what `make lock` writes: {' | '.join(shown)}")
    return problems


def check(names: list[str]) -> list[str]:
    uv = uv_binary()
    problems: list[str] = []
    for name in names:
        problems += check_one(uv, ENVS[name])
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bimedix.envs", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["ensure", "lock", "check", "python", "uv"])
    parser.add_argument("env", nargs="?", choices=sorted(ENVS), help="the environment (all of them for check)")
    parser.add_argument("--upgrade", action="store_true", help="lock: the newest releases the requirements allow")
    parser.add_argument("--python", default="", help="ensure: the interpreter to make it with (a supported one)")
    args = parser.parse_args(argv)
    try:
        if args.action == "uv":
            print(uv_binary())
            return 0
        if args.action == "check":
            names = [args.env] if args.env else sorted(ENVS)
            problems = check(names)
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            if problems:
                return 1
            print(f"every lock resolves against the package index alone, as shipped: {', '.join(names)}")
            return 0
        if args.env is None:
            parser.error(f"{args.action} needs an environment: {', '.join(sorted(ENVS))}")
        env = ENVS[args.env]
        if args.action == "ensure":
            ensure(env, args.python)
        elif args.action == "lock":
            lock(env, args.upgrade)
        else:
            print(env.python)
    except EnvError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
