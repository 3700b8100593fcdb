"""The stack keeps itself up: a worker, the controller or the API killed with -9 is restarted by the stack.

FastChat restarts nothing: after `kill -9` of the worker the clients got 503s, and `serve up`
stopped every part. Here the stack's supervisor restarts the dead part on its port, with a log
line, while the other worker keeps serving. One stack of its own (the tests kill its parts).
"""

from __future__ import annotations

import os
import signal
import time

import openai
import pytest

from serve.stack import ServeStack, http

MESSAGES = [{"role": "user", "content": "ما هي أعراض فقر الدم؟"}]
BACK_WITHIN_S = 240  # generous: a loaded 2-core machine; the measured figure is in serve/README.md


@pytest.fixture(scope="module")
def supervised(tiny_model_dir, new_log_dir):
    with ServeStack(tiny_model_dir, workers=2, log_dir=new_log_dir("supervised"), device="cpu") as running:
        yield running


@pytest.fixture(scope="module")
def supervised_client(supervised):
    return openai.OpenAI(base_url=supervised.api_base, api_key="none", max_retries=0, timeout=120)


def wait_for_event(stack, text: str, timeout: float = BACK_WITHIN_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in getattr(stack, "events", []) if text in e]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {timeout:.0f} s; events: {getattr(stack, 'events', None)}")


def chat(client, stack) -> str:
    reply = client.chat.completions.create(model=stack.model_name, messages=MESSAGES, max_tokens=3, temperature=0)
    return reply.choices[0].message.content


def kill(stack, role: str) -> int:
    pid = stack.parts[role].pid
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_killed_worker_is_restarted_while_the_other_keeps_serving(supervised, supervised_client):
    pid = kill(supervised, "worker-0")
    wait_for_event(supervised, f"the worker-0 (pid {pid}) exited with code -9; restarting it in")
    assert supervised.parts["worker-0"].state in ("down", "starting")
    for _ in range(4):  # worker-1 answers meanwhile: the dead worker was dropped from the controller
        assert chat(supervised_client, supervised)
    back = wait_for_event(supervised, "the worker-0 is back")
    assert supervised.parts["worker-0"].pid != pid and supervised.parts["worker-0"].alive()
    status, body = http("POST", supervised.controller_url + "/stack_workers", headers=supervised.internal_headers)
    assert status == 200 and len(body["workers"]) == 2, body
    assert "the worker-0 (pid" in (supervised.log_dir / "stack.log").read_text() and back


def test_a_killed_controller_is_restarted_and_the_workers_registered_again(supervised, supervised_client):
    port = supervised.parts["controller"].port
    kill(supervised, "controller")
    wait_for_event(supervised, "the controller is back")
    assert supervised.parts["controller"].port == port  # the API and the workers know this address
    status, body = http("POST", supervised.controller_url + "/list_models", headers=supervised.internal_headers)
    assert status == 200 and body["models"] == [supervised.model_name]
    assert chat(supervised_client, supervised)


def test_a_killed_api_server_is_restarted_on_its_port(supervised, supervised_client):
    kill(supervised, "api")
    wait_for_event(supervised, "the api is back")
    assert chat(supervised_client, supervised)  # the same base URL
    assert supervised.ready()
