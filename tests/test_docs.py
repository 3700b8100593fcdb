"""Every path a README names exists (generated outputs excepted), and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bimedix.paths import ROOT

READMES = sorted([ROOT / "README.md", *ROOT.glob("*/README.md"), *ROOT.glob("recipes/*/README.md")])
TRACKED_ROOTS = ("bimedix/", "templates/", "requirements/", "data_prep/", "recipes/", "eval_tasks/", "serve/", "demo/", "tests/", "benchmarks/", ".ci/")  # fmt: skip
PLACEHOLDER = re.compile(r"[*<>{}$]|\.\.\.")


def named_paths(text: str) -> set[str]:
    quoted = re.findall(r"`([^`\s]+)`", text)
    linked = [target for target in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in target]
    return {p.split("#")[0] for p in quoted + linked if p.startswith(TRACKED_ROOTS) or p.endswith((".md", ".yml"))}


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(readme: Path):
    missing = []
    for path in named_paths(readme.read_text(encoding="utf-8")):
        if not path or PLACEHOLDER.search(path):
            continue
        candidates = [ROOT / path, readme.parent / path]
        if not any(c.exists() for c in candidates):
            missing.append(path)
    assert not missing, f"{readme.relative_to(ROOT)} names paths that do not exist: {sorted(missing)}"
