"""Shared fixtures. Everything here is offline: the tiny model is built locally, never downloaded."""

from __future__ import annotations

import os

import pytest

from bimedix.paths import TINY_MODEL_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Files whose tests share an expensive session fixture: a parallel run (`make test` runs
# TEST_WORKERS pytest-xdist processes) keeps each group in one process, which builds it once.
SHARED = {"tests/recipes/test_ddp.py": "tests/recipes/test_train_merge.py"}  # `trained`: a real training


def pytest_collection_modifyitems(config, items):
    """Files marked heavy first (the order is otherwise kept), so that a parallel run hands out the
    long files at the start and does not end waiting on one."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Whole files to each process (a module fixture runs once), SHARED files together, in the
    collection order above (xdist would order them by their number of tests)."""
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED.get(path, path)

    config.option.loadscopereorder = False
    return FileGroups(config, log)


@pytest.fixture(scope="session")
def tiny_model_dir():
    """The tiny bilingual Mixtral (built by `make tiny-model`; built here if missing or stale)."""
    from bimedix.tiny_model import build

    return build(TINY_MODEL_DIR)
