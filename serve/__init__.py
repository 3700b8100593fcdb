"""Serving BiMediX through FastChat: controller, model workers, OpenAI API and web UI, locked down.

Everything here runs in the serving environment (.venv-serve) except serve/stack.py (and the
modules it imports: serve/config.py), which use the standard library only so that the other
stages can start the stack from the main environment.
"""
