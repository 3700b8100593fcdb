"""FastChat's gradio chat UI for BiMediX, with the research-only notice in English and Arabic.

    python -m serve.webui --port 7860 [--controller-url http://127.0.0.1:21001]
        [--api-endpoint-file FILE] [--model-name NAME ...] [--host 127.0.0.1] [--auth-file FILE]

It lists the models of the controller's workers and, with --api-endpoint-file, the models of
OpenAI-compatible servers (a vLLM server on a GPU host: `python -m serve write-api-endpoints`).
Bound to an address other than loopback it needs --auth-file (user:password pairs), so that the
model is not open to anyone who reaches the port.

Built from FastChat's own UI pieces (fastchat.serve.gradio_web_server.build_single_model_ui and its
handlers); changed around them: the BiMediX notice and title, the message length bound
(web.max_input_chars: a longer message is refused with a warning and stays in the box, where
FastChat cuts it silently), and no call to FastChat's rate-limit monitor, which FastChat makes on
every message to whatever listens on localhost:9090 (not part of this stack; on a shared machine,
someone else's server).

Nothing is loaded from other hosts (an offline hospital network would wait on them; elsewhere they
learn who uses the UI): gradio's page links a cdnjs script and preconnects to Google Fonts, and its
default theme loads Source Sans Pro from Google Fonts. The page template is read through a loader
that drops every <script>/<link> pointing at an absolute http(s) URL, and the theme uses IBM Plex
Sans, which gradio ships and serves itself. FastChat's buttons and hints start with emoji, which
render as empty boxes on a machine without an emoji font: they are dropped, the words stay.

Its calls to the controller and the workers carry the stack's secret (serve/trust.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from serve.config import ServeError, from_root, is_loopback, load_settings

# FastChat's UI opens with "Chat with Open Large Language Models"; the BiMediX notice replaces it.
HIDE_FASTCHAT_HEADER = "\n#notice_markdown { display: none !important; }\n"
# A <script> or <link> that loads from an absolute http(s) URL, i.e. from another host.
_THIRD_PARTY_TAG = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script\s*>|<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>",
    re.IGNORECASE,
)


def strip_third_party(html: str) -> str:
    """The page without the scripts and links it would load from other hosts."""
    return _THIRD_PARTY_TAG.sub("", html)


def is_pictograph(char: str) -> bool:
    """Emoji and the joiners around them: characters the usual text fonts lack (DejaVu, Liberation)."""
    cp = ord(char)
    return cp >= 0x1F000 or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF or cp in (0xFE0F, 0x200D, 0x20E3)


def without_pictographs(text: str) -> str:
    if not isinstance(text, str) or not any(is_pictograph(c) for c in text):
        return text
    return re.sub(r"[ \t]{2,}", " ", "".join(c for c in text if not is_pictograph(c))).strip()


def drop_pictographs(block) -> None:
    """Remove emoji from the labels, values and placeholders of `block` and everything inside it."""
    for child in getattr(block, "children", None) or []:
        for attribute in ("value", "label", "placeholder"):
            value = getattr(child, attribute, None)
            if isinstance(value, str):
                setattr(child, attribute, without_pictographs(value))
        drop_pictographs(child)


def local_only_pages() -> None:
    """Serve gradio's page template without the tags that load from other hosts (cdnjs, Google Fonts)."""
    import jinja2
    from gradio import routes

    inner = routes.templates.env.loader
    if getattr(inner, "bimedix_local_only", False):
        return

    class LocalOnlyLoader(jinja2.BaseLoader):
        bimedix_local_only = True

        def get_source(self, environment, template):
            source, filename, uptodate = inner.get_source(environment, template)
            return strip_third_party(source), filename, uptodate

    routes.templates.env.loader = LocalOnlyLoader()
    routes.templates.env.cache = None  # nothing compiled before the swap survives


def local_theme(gr):
    """gradio's default theme with fonts it serves itself (the default loads one from Google Fonts)."""
    from gradio.themes.utils.fonts import LocalFont

    return gr.themes.Default(
        font=(LocalFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(LocalFont("IBM Plex Mono"), "ui-monospace", "Consolas", "monospace"),
    )


def endpoint_models(path: str | None) -> list[str]:
    if not path:
        return []
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ServeError(f"--api-endpoint-file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ServeError(f"--api-endpoint-file {path}: expected an object of model name -> endpoint")
    return list(data)


def bounded_add_text(gws, gr, limit: int):
    """FastChat's add_text, refusing a message over `limit` characters instead of cutting it silently.

    The message stays in the box and the UI says why; FastChat's own hard cut-off would send the
    model the first 12,000 characters without a word.
    """
    original = gws.add_text

    def add_text(state, model_selector, text, image, request):
        if len(text) <= limit:
            return original(state, model_selector, text, image, request)
        if state is None:
            state = gws.State(model_selector)
        state.skip_next = True  # bot_response, chained after this, then does nothing
        gr.Warning(
            f"This message has {len(text)} characters; the limit is {limit} "
            "(serve/settings.yaml web.max_input_chars). It is still in the box: shorten it and send again."
        )
        return (state, state.to_gradio_chatbot(), text, image) + (gws.no_change_btn,) * 5

    add_text.__annotations__ = {"request": gr.Request}  # gradio injects the request by this annotation
    return add_text


def build_demo(gws, models: list[str], settings):
    import gradio as gr
    from fastchat.utils import get_window_url_params_js

    css = gws.block_css + HIDE_FASTCHAT_HEADER
    with gr.Blocks(title="BiMediX (research only)", theme=local_theme(gr), css=css) as demo:
        url_params = gr.JSON(visible=False)
        gr.Markdown(settings.notice.markdown, elem_id="bimedix_notice")
        state, model_selector = gws.build_single_model_ui(models)
        drop_pictographs(demo)
        demo.load(gws.load_demo, [url_params], [state, model_selector], js=get_window_url_params_js)
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.webui", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--controller-url", default="", help="the controller (omit to front only API endpoints)")
    parser.add_argument("--api-endpoint-file", help="FastChat's JSON file of OpenAI-compatible endpoints")
    parser.add_argument("--model-name", action="append", default=[], help="a BiMediX model name (repeatable)")
    parser.add_argument("--auth-file", help="user:password pairs, comma or line separated")
    parser.add_argument("--settings", help="settings file (default: serve/settings.yaml)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.settings)
        if not is_loopback(args.host) and not args.auth_file:
            raise ServeError(
                f"refusing to serve the web UI on {args.host} without --auth-file: anyone who reaches it "
                "could use the model. Give user:password pairs, or bind 127.0.0.1."
            )
        if not args.controller_url and not args.api_endpoint_file:
            raise ServeError("nothing to serve: give --controller-url, --api-endpoint-file or both")
        names = args.model_name + endpoint_models(args.api_endpoint_file)
        from serve import trust

        secret = trust.read_secret("web UI") if args.controller_url else None
    except ServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # FastChat writes its logs (and the web UI its conversations) into LOGDIR, "." unless set.
    os.environ.setdefault("LOGDIR", str(from_root(settings.stack.log_root)))

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from serve import compat, conversation, trust

    if secret:
        trust.install_requests_secret(secret)  # the controller and workers answer only the stack's parts
    compat.apply("web")
    conversation.register(settings, model_names=names)
    import fastchat.serve.gradio_web_server as gws
    from fastchat.utils import parse_gradio_auth_creds

    gws.args = argparse.Namespace(
        model_list_mode="once",
        register_api_endpoint_file=args.api_endpoint_file,
        show_terms_of_use=False,
    )
    import gradio as gr

    local_only_pages()
    gws.INPUT_CHAR_LEN_LIMIT = settings.web.max_input_chars
    gws.add_text = bounded_add_text(gws, gr, settings.web.max_input_chars)
    gws.is_limit_reached = lambda model_name, ip: None
    gws.set_global_vars(args.controller_url or None, False)
    gws.models, _ = gws.get_model_list(args.controller_url or None, args.api_endpoint_file, False)
    if not gws.models:
        print("error: no model to serve: the controller lists none and no API endpoint is given", file=sys.stderr)
        return 2
    demo = build_demo(gws, gws.models, settings)
    demo.queue(default_concurrency_limit=settings.web.concurrency, status_update_rate=10, api_open=False).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        max_threads=200,
        auth=parse_gradio_auth_creds(args.auth_file) if args.auth_file else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
