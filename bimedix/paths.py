"""Where things live. Every root can be moved with an environment variable; no absolute paths."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _root_relative(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    if not value:
        return default
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


TEMPLATES_DIR = ROOT / "templates"
CHAT_TEMPLATE = TEMPLATES_DIR / "chat_template.jinja"
SYSTEM_MESSAGE = TEMPLATES_DIR / "system_message.txt"
TINY_CORPUS = Path(__file__).resolve().parent / "assets" / "tiny_corpus.txt"
SMALL_MODEL_SETTINGS = Path(__file__).resolve().parent / "assets" / "small_model.yaml"

MODELS_DIR = _root_relative("BIMEDIX_MODELS_DIR", ROOT / "models")
TINY_MODEL_DIR = _root_relative("BIMEDIX_TINY_MODEL", MODELS_DIR / "tiny-bimedix-moe")
SMALL_MODEL_DIR = _root_relative("BIMEDIX_SMALL_MODEL", MODELS_DIR / "small-bimedix-moe")
SMALL_TEACHER_DIR = _root_relative("BIMEDIX_SMALL_TEACHER", MODELS_DIR / "smollm2-135m-instruct")
DATA_DIR = _root_relative("BIMEDIX_DATA_DIR", ROOT / "data")
