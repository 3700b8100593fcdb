"""The lock files, the conda files and the installed environment all agree."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bimedix.envs import ENVS, ROOT, is_current, normalise_freeze


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"{path.name}:{number}: not an exact pin: {line!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def read_requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def conda_pip_lines(path: Path) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    pip = [dep for dep in spec["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    assert len(pip) == 1, f"{path}: expected one pip section"
    return pip[0]["pip"]


LOCKS = {name: read_lock(env.lock_path) for name, env in ENVS.items()}
CONDA = {"main": ROOT / "environment.yml", "serve": ROOT / "serve" / "environment.yml"}
GPU_EXTRAS = {canonicalize_name(r.name): r for r in read_requirements(ROOT / "requirements" / "gpu.txt")}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_lock_satisfies_every_direct_requirement(name):
    lock = LOCKS[name]
    for requirement in read_requirements(ROOT / ENVS[name].requirements):
        key = canonicalize_name(requirement.name)
        assert key in lock, f"{ENVS[name].lock} lacks {requirement.name}"
        assert requirement.specifier.contains(lock[key], prereleases=True), (
            f"{ENVS[name].lock} pins {requirement.name}=={lock[key]}, outside {requirement.specifier}"
        )


@pytest.mark.parametrize("name", sorted(ENVS))
def test_conda_file_mirrors_the_lock(name):
    lock = LOCKS[name]
    conda_file = CONDA[name]
    lines = conda_pip_lines(conda_file)
    includes = [line for line in lines if line.startswith("-r ")]
    assert len(includes) == 1
    assert (conda_file.parent / includes[0][3:]).resolve() == ENVS[name].lock_path
    pinned = {}
    for line in lines:
        if line.startswith("-"):
            continue
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{conda_file.name}: {line} is not an exact pin"
        pinned[canonicalize_name(requirement.name)] = specs[0].version
    for key, version in pinned.items():
        expected = GPU_EXTRAS[key].specifier if key in GPU_EXTRAS else None
        if expected is not None:
            assert expected.contains(version), f"{conda_file.name}: {key}=={version} disagrees with gpu.txt"
        else:
            assert lock.get(key) == version, f"{conda_file.name}: {key}=={version}, lock has {lock.get(key)}"
    for requirement in read_requirements(ROOT / ENVS[name].requirements):
        assert canonicalize_name(requirement.name) in pinned, f"{conda_file.name} does not pin {requirement.name}"


def test_main_and_serve_compute_with_the_same_model_stack():
    """Served logits must equal training/eval logits: same torch, transformers, tokenizers, peft."""
    for package in ["torch", "transformers", "tokenizers", "peft", "accelerate", "safetensors", "huggingface-hub"]:
        assert LOCKS["main"][package] == LOCKS["serve"][package], package


def test_the_two_stacks_really_need_two_environments():
    main_gradio = LOCKS["main"]["gradio"]
    serve_gradio = LOCKS["serve"]["gradio"]
    assert int(main_gradio.split(".")[0]) >= 6 > int(serve_gradio.split(".")[0])


def test_running_environment_is_exactly_the_main_lock():
    running = Path(sys.prefix).resolve()
    if running != ENVS["main"].path.resolve():
        pytest.skip(f"not running in {ENVS['main'].directory}")
    assert is_current(ENVS["main"])
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed.pop("pip", None)
    installed.pop("setuptools", None)
    installed["torch"] = installed["torch"].split("+")[0]
    assert installed == LOCKS["main"]


def test_normalise_freeze_drops_local_build_tags_and_sorts():
    freeze = "torch==2.13.0+cpu\nZeta==1.0\n# comment\n-e git+https://example/x#egg=x\nalpha==2.0\n"
    assert normalise_freeze(freeze) == ["alpha==2.0", "torch==2.13.0", "Zeta==1.0"]
