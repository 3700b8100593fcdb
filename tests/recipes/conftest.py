"""Fixtures of the recipes tests: the project's own messages data, one real tiny training, one merge.

The training and the merge run once per session through the real command line
(`python -m recipes train tiny` -> `axolotl train`, `python -m recipes merge tiny` ->
`axolotl merge-lora`), into a temporary folder, on the tiny model and the data below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.recipes.helpers import FIXTURES, TRAIN_STEPS, run_cli


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A DATA_DIR laid out as `make data` writes it: processed/bilingual/{train,val}.jsonl."""
    root = tmp_path_factory.mktemp("data")
    target = root / "processed" / "bilingual"
    target.mkdir(parents=True)
    for name in ("train.jsonl", "val.jsonl"):
        shutil.copy(FIXTURES / name, target / name)
    return root


@pytest.fixture(scope="session")
def trained(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    """outputs/tiny/ of one real `python -m recipes train tiny` run (a few steps)."""
    out = tmp_path_factory.mktemp("outputs")
    done = run_cli("train", "tiny", "--data-dir", str(data_dir), "--output-root", str(out), "--set", f"max_steps={TRAIN_STEPS}")  # fmt: skip
    assert done.returncode == 0, f"training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out / "tiny"


@pytest.fixture(scope="session")
def merged(trained) -> Path:
    """outputs/tiny/merged, from `python -m recipes merge tiny` on the trained adapter."""
    done = run_cli("merge", "tiny", "--output-root", str(trained.parent))
    assert done.returncode == 0, f"merge failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert f"merged model: {trained / 'merged'}" in done.stdout
    return trained / "merged"
