"""The nine BiMediX medical benchmarks in English and Arabic as lm-evaluation-harness tasks, and the paper's tables.

Task YAML files live in this folder (`--include_path eval_tasks`); `python -m eval_tasks` wraps lm-eval's
Python API (see cli.py). Modules: registry (benchmarks and names), data (sources and converters),
utils (the tasks' prompt functions), evaluate (runs), tables (paper tables), backends, api_model.
"""
