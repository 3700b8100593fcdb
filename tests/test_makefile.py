"""`make help` documents every target, and every target has its one line."""

from __future__ import annotations

import re
import subprocess

from bimedix.paths import ROOT

TARGET = re.compile(r"^([a-zA-Z0-9_.-]+):(?!=)(.*)$")


def makefiles():
    files = [ROOT / "Makefile"]
    for stage in ["bimedix", "data_prep", "recipes", "eval_tasks", "serve", "demo", "benchmarks"]:
        files += sorted((ROOT / stage).glob("*.mk"))
    return files


def declared_targets():
    targets = {}
    for path in makefiles():
        for line in path.read_text().splitlines():
            match = TARGET.match(line)
            if match and not match.group(1).startswith("."):
                targets[match.group(1)] = match.group(2)
    return targets


def test_every_target_has_a_help_line():
    undocumented = [name for name, rest in declared_targets().items() if "## " not in rest and "$" not in name]
    assert not undocumented, f"targets without a '## ' help line: {undocumented}"


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^\s+make (\S+)", out, re.MULTILINE))
    assert set(declared_targets()) <= listed
    for required in ["help", "env", "env-serve", "tiny-model", "test", "lint"]:
        assert required in listed
