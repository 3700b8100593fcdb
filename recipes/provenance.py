"""Where the training data came from, read from the manifest.json `make data` writes beside it.

The data stage (data_prep/card.py) writes, beside each variant's train.jsonl and val.jsonl, a
manifest.json recording the mix file (path, sha256), every input file (path or hub id, sha256)
and the sha256 of each output. `python -m recipes train` prints that, refuses a file whose
content no longer matches its manifest, and lets a GPU recipe refuse data built only from the
embedded samples (a few hundred toy records: a Mixtral run on them is a wasted GPU day).

Only the keys named here are read; any other key may come and go.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes.config import rel

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Provenance:
    """What data_prep's manifest.json says about one of the files it wrote."""

    manifest: Path
    manifest_sha256: str
    mix: str | None  # the mix file as the manifest names it
    mix_sha256: str | None
    inputs: tuple[str, ...]  # every input: a file path (relative to the root) or `hub:<id>`
    recorded_sha256: str | None  # the sha256 the manifest records for this output file

    def only_from(self, prefixes: tuple[str, ...]) -> bool:
        """True when every input lies under one of `prefixes` (there is at least one input)."""
        return bool(self.inputs) and all(i.startswith(prefixes) for i in self.inputs)


def _inputs(manifest: dict[str, Any]) -> tuple[str, ...]:
    found = []
    for source in manifest.get("sources") or []:
        if not isinstance(source, dict):
            continue
        for entry in source.get("files") or []:
            if not isinstance(entry, dict):
                continue
            if entry.get("hub"):
                found.append(f"hub:{entry['hub']}")
            elif isinstance(entry.get("file"), str):
                found.append(entry["file"])
    return tuple(found)


def read_provenance(data_file: Path) -> Provenance | None:
    """The manifest beside `data_file`, or None when there is none (data not built by `make data`).
    Raises ValueError (one line, naming the file) when it is there but is not a JSON object."""
    manifest_path = data_file.parent / MANIFEST
    if not manifest_path.is_file():
        return None
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{rel(manifest_path)}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{rel(manifest_path)}: expected a JSON object, got {type(manifest).__name__}")
    mix = manifest.get("mix") if isinstance(manifest.get("mix"), dict) else {}
    outputs = manifest.get("outputs") if isinstance(manifest.get("outputs"), dict) else {}
    output = outputs.get(data_file.name) if isinstance(outputs.get(data_file.name), dict) else {}
    return Provenance(
        manifest=manifest_path,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        mix=mix.get("path") if isinstance(mix.get("path"), str) else None,
        mix_sha256=mix.get("sha256") if isinstance(mix.get("sha256"), str) else None,
        inputs=_inputs(manifest),
        recorded_sha256=output.get("sha256") if isinstance(output.get("sha256"), str) else None,
    )
