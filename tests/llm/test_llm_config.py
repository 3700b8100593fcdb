"""Endpoint and settings: from the environment or a YAML file, never hard-coded; typos are errors."""

from __future__ import annotations

import pytest

from data_prep.llm.config import ConfigError, load_endpoint, load_settings

ENV = {"BIMEDIX_LLM_BASE_URL": "http://127.0.0.1:9/v1", "BIMEDIX_LLM_MODEL": "m", "BIMEDIX_LLM_API_KEY": "sk-secret"}


def test_shipped_settings_load():
    settings = load_settings()
    assert settings.translate.max_rounds >= 1 and settings.synthesize.min_turns >= 4
    assert settings.synthesize.leak_patterns


def test_endpoint_from_the_environment(settings):
    endpoint = load_endpoint(None, settings, ENV)
    assert (endpoint.base_url, endpoint.model, endpoint.api_key) == ("http://127.0.0.1:9/v1", "m", "sk-secret")
    assert "sk-secret" not in repr(endpoint)
    assert load_endpoint(None, settings, ENV | {"BIMEDIX_LLM_API_KEY": ""}).api_key == "EMPTY"


def test_no_endpoint_says_how_to_configure_one(settings):
    with pytest.raises(ConfigError) as info:
        load_endpoint(None, settings, {})
    message = str(info.value)
    assert "\n" not in message
    assert "BIMEDIX_LLM_BASE_URL" in message and "--endpoint" in message and "LLM_ENDPOINT=" in message


def test_endpoint_file_with_prices_limits_and_a_key_variable(tmp_path, settings):
    path = tmp_path / "endpoint.yaml"
    path.write_text(
        "base_url: http://h/v1/\nmodel: m\napi_key_env: MY_KEY\nprice_per_1k_input: 0.5\nrpm: 60\nconcurrency: 4\n"
    )
    endpoint = load_endpoint(path, settings, {"MY_KEY": "secret"})
    assert endpoint.api_key == "secret"
    assert endpoint.client.price_per_1k_input == 0.5 and endpoint.client.rpm == 60 and endpoint.client.concurrency == 4
    assert endpoint.client.timeout_s == settings.client.timeout_s  # the rest from settings.yaml
    assert endpoint.cache_scope == "http://h/v1|m"  # a trailing slash does not change cache keys
    overridden = endpoint.with_overrides(concurrency=2, rpm=None)
    assert overridden.client.concurrency == 2 and overridden.client.rpm == 60


def test_the_endpoint_file_can_come_from_the_environment(tmp_path, settings):
    path = tmp_path / "e.yaml"
    path.write_text("base_url: http://h/v1\nmodel: m\n")
    assert load_endpoint(None, settings, {"BIMEDIX_LLM_ENDPOINT": str(path)}).model == "m"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base_url: http://h/v1\nmodel: m\nconcurency: 4\n", r"e\.yaml: unknown key 'concurency'"),
        ("base_url: http://h/v1\n", r"e\.yaml: model is missing or empty"),
        ("base_url: http://h/v1\nmodel: m\nrpm: fast\n", r"e\.yaml\.rpm: expected a number, got 'fast'"),
        ("base_url: http://h/v1\nmodel: m\nconcurrency: 0\n", r"e\.yaml: concurrency must be >= 1"),
        ("base_url: [unclosed\n", r"e\.yaml:\d+: not valid YAML"),
    ],
)
def test_bad_endpoint_files_name_the_file_and_key(tmp_path, settings, text, message):
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_endpoint(path, settings, {})


def test_a_typo_in_settings_is_an_error(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("translate:\n  qa:\n    min_chrff: 40\n")
    with pytest.raises(ConfigError, match=r"settings\.yaml\.translate\.qa: unknown key 'min_chrff'"):
        load_settings(path)
