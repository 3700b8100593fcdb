"""Fixtures of the LLM stage tests: the fault-injection server on 127.0.0.1 and endpoints pointing at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.llm.config import ClientSettings, Endpoint, load_settings
from data_prep.llm.testing.fake_server import FakeServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def fake_server():
    with FakeServer() as server:
        yield server


@pytest.fixture
def settings():
    return load_settings()


@pytest.fixture
def endpoint_for():
    """endpoint_for(server, **client settings): an Endpoint on the fake server with fast test backoffs."""

    def make(server: FakeServer, **client) -> Endpoint:
        defaults = {"timeout_s": 5.0, "max_retries": 4, "backoff_base_s": 0.02, "backoff_cap_s": 0.2, "concurrency": 8}
        return Endpoint(server.base_url, server.model, client=ClientSettings(**(defaults | client)))

    return make
