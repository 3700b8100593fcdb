"""Fixes that let FastChat 0.2.36 (last release 2024-02) run beside transformers 5 and pydantic 2.

Applied from outside, in the FastChat process, before FastChat's module runs; nothing in
site-packages is edited. Each fix has a test in tests/serve/test_compat.py that shows the unfixed
failure, then the fixed behaviour.

- context_length: the worker dies at load with KeyError 'factor'. fastchat.utils.get_context_length
  reads config.rope_scaling["factor"]; transformers 5 keeps rope_scaling as a view of
  rope_parameters, which holds no factor for plain RoPE ({'rope_type': 'default', 'rope_theta': ...}).
- pydantic_json: every streamed reply of the OpenAI API is empty. The stream generators call
  `.json(exclude_unset=True, ensure_ascii=False)`, pydantic-1 API; pydantic 2 raises
  TypeError (dumps_kwargs) inside the response generator, after the 200 headers went out.
- gc_freeze: each reply pays a full gc.collect() (fastchat.serve.inference.generate_stream cleans up
  after every request), which walks every object the process holds: ~200 ms with torch and
  transformers loaded, 10x a tiny model's reply. Freezing the objects alive once the model has
  loaded (gc.freeze) takes them out of every later collection; the collect still frees what the
  request itself left behind.
"""

from __future__ import annotations

import functools
import gc
import json
import os

_applied: set[str] = set()


def _once(name: str) -> bool:
    if name in _applied:
        return False
    _applied.add(name)
    return True


def context_length(config) -> int:
    """fastchat.utils.get_context_length, reading the RoPE factor the way transformers 5 stores it."""
    from fastchat.utils import SEQUENCE_LENGTH_KEYS

    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    factor = 1.0
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        factor = float(rope.get("factor") or 1.0)
    for key in SEQUENCE_LENGTH_KEYS:
        value = getattr(config, key, None)
        if value is not None:
            return int(factor * value)
    return 2048


def apply_context_length() -> None:
    if not _once("context_length"):
        return
    import fastchat.serve.inference as inference
    import fastchat.utils as utils

    utils.get_context_length = context_length
    inference.get_context_length = context_length  # imported by name at its import


def _pydantic1_json(self, *, ensure_ascii: bool = False, **kwargs) -> str:
    """pydantic-1's BaseModel.json(**dict_kwargs, ensure_ascii=...) on pydantic 2."""
    return json.dumps(self.model_dump(mode="json", **kwargs), ensure_ascii=ensure_ascii)


def apply_pydantic_json() -> None:
    if not _once("pydantic_json"):
        return
    from fastchat.protocol import api_protocol, openai_api_protocol
    from pydantic import BaseModel

    for module in (openai_api_protocol, api_protocol):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
                value.json = _pydantic1_json


def apply_gc_freeze() -> None:
    """Wrap fastchat's load_model so that everything alive after the load is frozen out of the gc."""
    if not _once("gc_freeze"):
        return
    from fastchat.model import model_adapter

    original = model_adapter.load_model

    @functools.wraps(original)
    def load_model(*args, **kwargs):
        loaded = original(*args, **kwargs)
        gc.collect()
        gc.freeze()
        return loaded

    model_adapter.load_model = load_model


FIXES = {
    "context_length": apply_context_length,
    "pydantic_json": apply_pydantic_json,
    "gc_freeze": apply_gc_freeze,
}
ROLES = {
    "worker": ("context_length", "gc_freeze"),
    "api": ("pydantic_json",),
    "web": (),
}


# Names of fixes to leave out, comma-separated: to measure or show what a fix is for
# (benchmarks/serve_latency.py --stock-gc), never for serving.
SKIP_ENV = "BIMEDIX_SERVE_COMPAT_SKIP"


def apply(role: str) -> None:
    """Apply the fixes a FastChat process of this role needs (before FastChat's module runs)."""
    skip = {name.strip() for name in os.environ.get(SKIP_ENV, "").split(",") if name.strip()}
    unknown = skip - set(FIXES)
    if unknown:
        raise ValueError(f"{SKIP_ENV}: unknown fix(es) {sorted(unknown)}; known: {sorted(FIXES)}")
    for name in ROLES[role]:
        if name not in skip:
            FIXES[name]()
