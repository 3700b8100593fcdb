"""End to end against the project's own FastChat stack serving the tiny model (serve/stack.py).

The tiny model's weights are random, so its text is nonsense: every item fails the automatic
checks, and with --keep-unverified it is still written, marked unverified, in the data stage's
formats. What this proves is the plumbing: real HTTP to FastChat's OpenAI API, usage counted,
the cache answering a second run, every item accounted for.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from data_prep.llm.__main__ import main
from data_prep.llm.config import SETTINGS_FILE
from data_prep.llm.records import parse_chat, parse_mcq
from serve.stack import ServeStack

# Not `from conftest import`: with several tests/*/conftest.py the name `conftest` is ambiguous.
FIXTURES = Path(__file__).resolve().parent / "fixtures"

ITEMS = 2


def quick_settings(path):
    """The shipped settings with short replies and one round: the tiny model on a CPU is slow to babble."""
    settings = yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))
    settings["client"]["concurrency"] = 4
    settings["translate"] |= {"max_tokens": 48, "max_rounds": 0}
    settings["synthesize"] |= {"max_tokens": 48, "max_attempts": 1}
    for key in ("prompt", "back_prompt"):
        settings["translate"][key] = str(SETTINGS_FILE.parent / settings["translate"][key])
    settings["synthesize"]["prompt"] = str(SETTINGS_FILE.parent / settings["synthesize"]["prompt"])
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return path


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_both_stages_run_against_fastchat_serving_the_tiny_model(tiny_model_dir, tmp_path):
    settings = quick_settings(tmp_path / "settings.yaml")
    with ServeStack(tiny_model_dir, log_dir=tmp_path / "serve-logs", device="cpu") as served:
        endpoint = tmp_path / "endpoint.yaml"
        endpoint.write_text(
            yaml.safe_dump(
                {"base_url": served.api_base, "model": served.model_name, "api_key": served.api_key or "EMPTY"}
            )
        )
        common = ["--input", str(FIXTURES / "mcq_small.jsonl"), "--limit", str(ITEMS), "--keep-unverified",
                  "--endpoint", str(endpoint), "--settings", str(settings), "--cache", str(tmp_path / "c.sqlite"),
                  "--no-progress"]  # fmt: skip
        assert main(["translate", *common, "--out", str(tmp_path / "tr")]) == 0
        assert main(["synthesize", *common, "--out", str(tmp_path / "syn")]) == 0
        assert main(["translate", *common, "--out", str(tmp_path / "tr2")]) == 0

    translated = json.loads((tmp_path / "tr" / "manifest.json").read_text())
    assert sum(translated["items"].values()) == ITEMS and "error" not in translated["items"]
    assert translated["usage"]["completions_paid"] > 0 and translated["usage"]["prompt_tokens"] > 0
    written = rows(tmp_path / "tr" / "translated.jsonl") + rows(tmp_path / "tr" / "unverified.jsonl")
    assert len(written) == ITEMS
    for row in written:
        assert len(parse_mcq(row).options) == 4  # every field has a text the data stage can read
        assert row["provenance"]["model"] == served.model_name
    again = json.loads((tmp_path / "tr2" / "manifest.json").read_text())
    assert again["usage"]["completions_paid"] == 0 and again["usage"]["cache_hits"] > 0

    synthesized = json.loads((tmp_path / "syn" / "manifest.json").read_text())
    assert synthesized["items"]["error"] == 0
    assert synthesized["items"]["machine"] + synthesized["items"]["unverified"] + synthesized["items"]["rejected"] == ITEMS  # fmt: skip
    chats = rows(tmp_path / "syn" / "chats.jsonl") + rows(tmp_path / "syn" / "chats_unverified.jsonl")
    for chat in chats:
        assert parse_chat(chat).messages[0]["role"] == "user"
