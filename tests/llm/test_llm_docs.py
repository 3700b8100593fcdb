"""Every path data_prep/llm/README.md names exists (as tests/test_docs.py checks the stage READMEs)."""

from __future__ import annotations

import re

from bimedix.paths import ROOT

README = ROOT / "data_prep" / "llm" / "README.md"


def test_named_paths_exist():
    text = README.read_text(encoding="utf-8")
    quoted = [p for p in re.findall(r"`([^`\s]+)`", text) if "/" in p and not re.search(r"[*<>{}$=]|\.\.\.", p)]
    linked = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    missing = []
    for path in quoted + linked:
        if path.startswith(("data/", "LLM_RUN/", "RUN/", "models/", "http")):
            continue  # produced by a run, not shipped
        if not (ROOT / path).exists() and not (README.parent / path).exists():
            missing.append(path)
    assert not missing, f"{README.relative_to(ROOT)} names paths that do not exist: {missing}"
