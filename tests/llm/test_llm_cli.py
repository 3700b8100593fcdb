"""The command line and the make targets: one-line errors, exit codes, the whole review loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bimedix.paths import ROOT
from data_prep.llm.__main__ import main

# Not `from conftest import`: with several tests/*/conftest.py the name `conftest` is ambiguous.
FIXTURES = Path(__file__).resolve().parent / "fixtures"

NO_ENDPOINT = {k: v for k, v in os.environ.items() if not k.startswith("BIMEDIX_LLM_")}


@pytest.mark.parametrize("target", ["translate", "synthesize"])
def test_make_targets_without_an_endpoint_fail_with_one_line_saying_how(target, tmp_path):
    result = subprocess.run(
        ["make", "-s", target, f"LLM_RUN={tmp_path}/run"], cwd=ROOT, env=NO_ENDPOINT, capture_output=True, text=True
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "BIMEDIX_LLM_BASE_URL" in errors[0] and "LLM_ENDPOINT=" in errors[0]
    assert not (tmp_path / "run").exists()


@pytest.fixture
def endpoint_env(monkeypatch, fake_server):
    monkeypatch.setenv("BIMEDIX_LLM_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("BIMEDIX_LLM_MODEL", fake_server.model)
    return fake_server


def test_translate_review_loop_through_the_cli(endpoint_env, tmp_path, capsys):
    endpoint_env.llm.fix_on_retry = False  # t-003 then needs a reviewer
    common = ["--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"), "--no-progress"]
    assert main(["translate", "--input", str(FIXTURES / "mcq_small.jsonl"), *common]) == 0
    out = capsys.readouterr().out
    assert "translate: 3 items (2 machine, 1 pending), 6 input rows rejected" in out
    assert "review queue:" in out and "calls paid" in out

    assert main(["review-export", "--run", str(tmp_path / "run")]) == 0
    queue = tmp_path / "run" / "review" / "queue.csv"
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame["verdict"] = "accept"
    frame.to_csv(tmp_path / "reviewed.csv", index=False)
    assert main(["review-import", "--run", str(tmp_path / "run"), str(tmp_path / "reviewed.csv")]) == 0
    assert "3 decisions recorded, 0 already recorded" in capsys.readouterr().out
    assert main(["review-import", "--run", str(tmp_path / "run"), str(tmp_path / "reviewed.csv")]) == 0
    assert "0 decisions recorded, 3 already recorded" in capsys.readouterr().out


def test_endpoint_errors_exit_non_zero_and_say_the_run_can_resume(fake_server, tmp_path, capsys):
    endpoint = tmp_path / "endpoint.yaml"
    endpoint.write_text(f"base_url: {fake_server.base_url}\nmodel: fake-model\nmax_retries: 0\n")
    fake_server.first_attempt = "500"
    args = [
        "translate",
        "--input",
        str(FIXTURES / "qa.jsonl"),
        "--format",
        "qa_jsonl",
        "--endpoint",
        str(endpoint),
        "--out",
        str(tmp_path / "run"),
        "--cache",
        str(tmp_path / "c.sqlite"),
        "--no-progress",
    ]
    # every distinct call fails once: the translation, then its back-translation; each rerun resumes
    assert [main(args), main(args), main(args)] == [1, 1, 0]
    assert "run again to retry them (finished calls are cached)" in capsys.readouterr().err
    assert [e.fault for e in fake_server.log] == ["500", "ok", "500", "ok"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.jsonl"], "error: missing.jsonl: input file not found"),
        (["--input", str(FIXTURES / "qa.jsonl"), "--endpoint", "nope.yaml"], "error: nope.yaml: file not found"),
    ],
)
def test_usage_errors_are_one_line(endpoint_env, tmp_path, capsys, args, message):
    assert main(["translate", *args, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == message


def test_a_refused_key_stops_the_run(endpoint_env, tmp_path, capsys):
    endpoint_env.push("401")
    args = [
        "translate",
        "--input",
        str(FIXTURES / "qa.jsonl"),
        "--format",
        "qa_jsonl",
        "--out",
        str(tmp_path / "r"),
        "--cache",
        str(tmp_path / "c.sqlite"),
        "--no-progress",
    ]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: http://127.0.0.1:") and "HTTP 401 for model 'fake-model'" in error


def test_the_fake_server_runs_as_its_own_process(tmp_path):
    ready = tmp_path / "url"
    process = subprocess.Popen(
        [sys.executable, "-m", "data_prep.llm.testing.fake_server", "--ready-file", str(ready)],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("fake LLM server on http://127.0.0.1:") and ready.read_text().strip() in line
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
