"""Shared code of the BiMediX recipes: paths, the chat template, the tiny model, environments.

Kept import-light on purpose: `python3 -m bimedix.envs` runs with the system Python before
any environment exists, so nothing here may import a third-party package at module level.
"""
