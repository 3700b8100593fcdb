"""Shared fixtures. Everything here is offline: the tiny model is built locally, never downloaded."""

from __future__ import annotations

import os

import pytest

from bimedix.paths import TINY_MODEL_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir():
    """The tiny bilingual Mixtral (built by `make tiny-model`; built here if missing or stale)."""
    from bimedix.tiny_model import build

    return build(TINY_MODEL_DIR)
