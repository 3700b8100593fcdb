"""The rendered chat template (what training sees) and its token count with the base model's tokenizer.

`render(messages)` gives exactly `bimedix.chat.render(messages)`: the same template file and
Jinja settings, compiled once per process, in a plain (not sandboxed) environment because the
template is the project's own and the sandbox's attribute checks cost more than the rendering
(a test renders every sample both ways). Tokens are counted with the fast
tokenizer's batch encoding and without adding special tokens, because the rendered text already
starts with the BOS string: this is what Axolotl's `chat_template` loader tokenises (a test
compares the counts with Axolotl's own).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bimedix.chat import BOS, EOS, ChatTemplateError, chat_template
from bimedix.paths import ROOT, TINY_MODEL_DIR
from data_prep.records import DataPrepError


@lru_cache(maxsize=1)
def _template():
    import jinja2
    import jinja2.ext  # not imported by `import jinja2`; bimedix.chat.render has the same gap

    def raise_exception(message: str) -> None:
        raise ChatTemplateError(message)

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(chat_template())


def render(messages: list[dict[str, str]], bos_token: str = BOS, eos_token: str = EOS) -> str:
    return _template().render(messages=messages, bos_token=bos_token, eos_token=eos_token, add_generation_prompt=False)


@dataclass(frozen=True)
class TokenizerInfo:
    name: str  # as the user named it (a path or a hub id)
    json: str  # the serialised fast tokenizer (tokenizer.json)
    sha256: str
    bos: str
    eos: str

    def count(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.int64)
        encodings = _tokenizer(self.json).encode_batch(texts, add_special_tokens=False)
        return np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))


@lru_cache(maxsize=2)
def _tokenizer(serialised: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(serialised)


def _special(config: dict, name: str, default: str) -> str:
    value = config.get(name)
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else default


def load_tokenizer(spec: str | None) -> TokenizerInfo:
    """A local folder holding tokenizer.json, a tokenizer.json file, or a hub id; None = the tiny model."""
    name = spec or str(TINY_MODEL_DIR.relative_to(ROOT) if TINY_MODEL_DIR.is_relative_to(ROOT) else TINY_MODEL_DIR)
    path = Path(spec) if spec else TINY_MODEL_DIR
    config_path = None
    if path.is_dir():
        tokenizer_path, config_path = path / "tokenizer.json", path / "tokenizer_config.json"
        if not tokenizer_path.is_file():
            raise DataPrepError(f"tokenizer {name}: no tokenizer.json in that folder (a fast tokenizer is needed)")
    elif path.is_file():
        tokenizer_path = path
    elif spec is None:
        raise DataPrepError(f"tokenizer {name}: not built yet; run `make tiny-model` or pass --tokenizer")
    elif spec.count("/") == 1 and not spec.startswith((".", "/")):
        tokenizer_path, config_path = _from_hub(spec)
    else:
        raise DataPrepError(f"tokenizer {name}: no such folder or file, and not a hub id (owner/name)")
    serialised = tokenizer_path.read_text(encoding="utf-8")
    config = {}
    if config_path is not None and config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
    return TokenizerInfo(
        name=name,
        json=serialised,
        sha256=hashlib.sha256(serialised.encode()).hexdigest(),
        bos=_special(config, "bos_token", BOS),
        eos=_special(config, "eos_token", EOS),
    )


def _from_hub(repo_id: str) -> tuple[Path, Path | None]:
    try:
        from huggingface_hub import hf_hub_download

        tokenizer_path = Path(hf_hub_download(repo_id, "tokenizer.json"))
    except Exception as err:  # offline, gated, missing: one line naming it
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataPrepError(f"tokenizer {repo_id}: cannot download tokenizer.json ({message})") from None
    try:
        config_path = Path(hf_hub_download(repo_id, "tokenizer_config.json"))
    except Exception:
        config_path = None
    return tokenizer_path, config_path
