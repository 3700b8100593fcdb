"""Axolotl itself accepts the output: `axolotl preprocess` on the tiny model with a
`type: chat_template` dataset, and only the assistant turns carry labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bimedix.paths import CHAT_TEMPLATE, ROOT
from data_prep.tokens import render

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)


def test_axolotl_preprocess_labels_only_assistant_turns(built, tiny_model_dir, tokenizer, tmp_path):
    data = built["bilingual"].directory / "train.jsonl"
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    config = {
        "base_model": str(tiny_model_dir),
        "datasets": [
            {
                "path": str(data),
                "ds_type": "json",
                "type": "chat_template",
                "field_messages": "messages",
                "chat_template": "jinja",
                "chat_template_jinja": str(CHAT_TEMPLATE),
                "roles_to_train": ["assistant"],
            }
        ],
        "dataset_prepared_path": str(tmp_path / "prepared"),
        "sequence_len": 2048,
        "output_dir": str(tmp_path / "out"),
        "micro_batch_size": 1,
        "num_epochs": 1,
        "learning_rate": 1e-4,
    }
    (tmp_path / "axolotl.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # it execs `accelerate`
        "AXOLOTL_DO_NOT_TRACK": "1",  # no telemetry (it blocks on retries offline)
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "axolotl"), "preprocess", str(tmp_path / "axolotl.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    import datasets
    from tokenizers import Tokenizer

    prepared = datasets.load_from_disk(str(next((tmp_path / "prepared").glob("*/"))))
    assert len(prepared) == len(records)
    decoder = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    by_text = {render(r["messages"]): r for r in records}
    seen = set()
    for example in prepared:
        ids, labels = example["input_ids"], example["labels"]
        text = decoder.decode(ids, skip_special_tokens=False).replace("<s> ", "<s>", 1)
        record = by_text.get(text) or by_text.get(decoder.decode(ids, skip_special_tokens=False))
        assert record is not None, text[:200]
        seen.add(record["id"])
        # the token count the dataset card reports is what Axolotl trains on
        assert len(ids) == int(tokenizer.count([render(record["messages"])])[0])
        spans, current = [], []
        for token, label in zip(ids, labels, strict=True):
            if label != -100:
                assert label == token
                current.append(token)
            elif current:
                spans.append(current)
                current = []
        if current:
            spans.append(current)
        answers = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert len(spans) == len(answers)
        for span, answer in zip(spans, answers, strict=True):
            assert decoder.decode(span, skip_special_tokens=False).strip() == answer + "</s>"
    assert len(seen) == len(records)
