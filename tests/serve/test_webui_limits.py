"""The web UI refuses an over-long message with a warning and keeps it, where FastChat cuts it silently."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="module")
def gws():
    stdout, stderr = sys.stdout, sys.stderr  # FastChat's logger swaps them at import
    import fastchat.serve.gradio_web_server as module

    sys.stdout, sys.stderr = stdout, stderr
    return module


def test_an_over_long_message_is_refused_and_kept(gws):
    import gradio as gr

    from serve.webui import bounded_add_text

    add_text = bounded_add_text(gws, gr, limit=20)
    request = gr.Request(headers={}, client={"host": "127.0.0.1"})  # FastChat's handlers log the client's address
    long_text = "ما هي أعراض نقص فيتامين د عند الأطفال؟"
    with pytest.warns(UserWarning, match="the limit is 20"):
        state, chatbot, box, _image, *_buttons = add_text(None, "tiny-bimedix-moe", long_text, None, request)
    assert box == long_text and chatbot == [] and state.skip_next  # nothing sent, nothing lost
    state, chatbot, box, *_ = add_text(None, "tiny-bimedix-moe", "ما البديل؟", None, request)
    assert box == "" and chatbot == [["ما البديل؟", None]] and not state.skip_next
