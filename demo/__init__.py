"""The demo runner (`make demo`): the whole BiMediX recipe at small scale, offline, on a CPU.

The top floor: it imports the stages (data_prep, recipes, eval_tasks, serve) through their command
lines and public entry points; nothing imports it. See demo/runner.py and demo/demo.yaml.
"""
