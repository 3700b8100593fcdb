"""Fixtures for the data_prep tests: the three default variants built once, offline, from the
embedded samples and a fixture evaluation index (tests/data_prep/fixtures/eval/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bimedix.paths import ROOT

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EVAL_INDEX = FIXTURES / "eval" / "index.yaml"
MIXES = ROOT / "data_prep" / "mixes"
SAMPLES = ROOT / "data_prep" / "samples"


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from data_prep.tokens import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def eval_index():
    from data_prep.decontam import load_eval_index

    return load_eval_index(str(EVAL_INDEX))


@pytest.fixture(scope="session")
def built(tmp_path_factory, tokenizer, eval_index):
    """{variant: Built} for bilingual, arabic and english, built with two worker processes."""
    from data_prep.build import build_variant
    from data_prep.config import load_mix, load_settings

    out = tmp_path_factory.mktemp("processed")
    settings = load_settings()
    return {
        name: build_variant(
            load_mix(MIXES / f"{name}.yaml"),
            settings,
            out_dir=out,
            tokenizer=tokenizer,
            eval_index=eval_index,
            workers=2,
        )
        for name in ("bilingual", "arabic", "english")
    }
