"""FastChat's API endpoint file: puts an OpenAI-compatible server (vLLM on a GPU host) in the web UI.

The gradio web server reads it with --register-api-endpoint-file; each entry is
{"model_name", "api_type": "openai", "api_base", "api_key", "anony_only"} under the name the web UI
shows. FastChat sends the conversation as OpenAI chat messages (the BiMediX system message
first), and the server applies the model's own chat template, templates/chat_template.jinja
when vLLM is started with --chat-template.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

from serve.config import ServeError

# FastChat passes api_key to the OpenAI client, which refuses an empty one; a server started
# without --api-key accepts any.
NO_KEY = "none"


def endpoint_entry(model_name: str, api_base: str, api_key: str | None) -> dict:
    parsed = urllib.parse.urlparse(api_base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ServeError(f"--api-base {api_base!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1")
    if not parsed.path.rstrip("/").endswith("/v1"):
        raise ServeError(f"--api-base {api_base!r}: an OpenAI-compatible base URL ends with /v1")
    if not model_name.strip():
        raise ServeError("--model-name: empty")
    return {
        "model_name": model_name,
        "api_type": "openai",
        "api_base": api_base.rstrip("/"),
        "api_key": api_key or NO_KEY,
        "anony_only": False,
    }


def write_endpoint_file(
    out: str | Path, model_name: str, api_base: str, *, api_key: str | None = None, display_name: str | None = None
) -> Path:
    """Write (or add to) the endpoint file; readable by its owner only, since it may hold a key."""
    out = Path(out)
    entries = {}
    if out.exists():
        try:
            entries = json.loads(out.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ServeError(f"{out}: exists but is not JSON ({err}); remove it or pick another --out") from None
    entries[display_name or model_name] = endpoint_entry(model_name, api_base, api_key)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(entries, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    os.chmod(out, 0o600)
    return out
