"""Axolotl QLoRA recipes for BiMediX: the recipe files, their checks, and the train/merge glue.

`python -m recipes --help` lists the commands; recipes/README.md explains the recipes.
"""
