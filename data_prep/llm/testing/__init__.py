"""Test tooling for the LLM stages: a fault-injection OpenAI-compatible server with deterministic replies."""
