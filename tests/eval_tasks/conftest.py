"""Fixtures of the eval_tasks tests (helpers and golden counts: eval_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_fixtures import write_edge_data


@pytest.fixture(scope="session")
def edge_data(tmp_path_factory) -> Path:
    """A folder with one file per format, Arabic and English edge cases and rows to reject (EDGE_COUNTS)."""
    return write_edge_data(tmp_path_factory.mktemp("edge_data"))
