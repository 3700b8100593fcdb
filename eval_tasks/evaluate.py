"""Run the bimedix_* tasks through lm-eval's Python API and write results/<run>/ with provenance and tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bimedix.audit import Gate
from bimedix.chat import system_message
from bimedix.paths import ROOT
from eval_tasks import backends, data, registry, tables

TASKS_DIR = Path(__file__).resolve().parent
DEFAULT_TASKS = ("bimedix_bilingual",)  # the paper's 18; default_tasks() adds MedArabiQ where the data has it


class RunError(ValueError):
    """A run that cannot start or finish as asked (one line)."""


@dataclass
class RunOptions:
    model: str = "models/tiny-bimedix-moe"
    adapter: str | None = None
    backend: str = "hf"
    tasks: tuple[str, ...] = ()  # empty: default_tasks(source)
    data: str = "sample"  # sample | hub | a folder or index file
    data_root: str | None = None  # where an index's paths resolve (default: the index's folder)
    run_name: str | None = None
    results_dir: Path = Path("results")
    limit: int | None = None  # questions per task, for smoke tests
    batch_size: int | str = 8
    device: str | None = None
    chat_template: bool = False
    system: str = "none"  # none | project (templates/system_message.txt) | any other text
    api_url: str | None = None  # backend api: http://127.0.0.1:PORT/v1 of a running FastChat OpenAI server
    api_model: str | None = None  # backend api: the served model name (default: the model folder's name)
    tensor_parallel_size: int = 1
    log_samples: bool = True
    extra_model_args: dict = field(default_factory=dict)
    max_rejected_share: float | None = None  # the audit's limits (default: eval_tasks/settings.yaml)
    max_repeated_share: float | None = None

    def gate(self) -> Gate:
        default = data.default_gate()
        return Gate(
            default.max_rejected_share if self.max_rejected_share is None else self.max_rejected_share,
            default.max_repeated_share if self.max_repeated_share is None else self.max_repeated_share,
        )

    def name(self) -> str:
        if self.run_name:
            return self.run_name
        label = Path(self.model).name + (f"+{Path(self.adapter).name}" if self.adapter else "")
        source = self.data if self.data in ("sample", "hub") else Path(self.data).name
        return re.sub(r"[^A-Za-z0-9._+-]+", "-", f"{label}-{self.backend}-{source}")


def _quiet_lm_eval() -> None:
    """lm-eval warns once per task that custom kwargs go through --metadata; we already do that."""

    class _DropMetadataHint(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()

    for name in ("lm_eval.api.task", "lm-eval", "lm_eval"):
        logging.getLogger(name).addFilter(_DropMetadataHint())


def task_manager(source: data.DataSource, include_defaults: bool = False, gate: Gate | None = None):
    from lm_eval.tasks import TaskManager

    metadata = {"eval_data": source.kind if source.kind in ("hub", "sample") else str(source.index)}
    if source.kind != "hub":
        metadata["eval_data_root"] = str(source.root)
    if gate is not None:
        metadata |= {"max_rejected_share": gate.max_rejected_share, "max_repeated_share": gate.max_repeated_share}
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=include_defaults, metadata=metadata)


def leaf_tasks(names: list[str]) -> list[str]:
    """The bimedix_* tasks that names (tasks or groups) stand for; other names are left out."""
    groups = registry.groups()
    out: list[str] = []
    for name in names:
        if name in groups:
            out += leaf_tasks(groups[name])
        elif name.startswith(registry.PREFIX) and name not in out:
            out.append(name)
    return out


def check_data(tasks: list[str], source: data.DataSource, gate: Gate | None = None) -> None:
    """Read and audit every task's data now, so a missing, malformed or refused file fails before a
    large model loads; the audit's findings go to stderr (and, with the counts, into results.json)."""
    seen, problems = set(), []
    for name in leaf_tasks(tasks):
        task = registry.parse_task(name)
        if task.data_name not in seen:
            seen.add(task.data_name)
            _, report = data.load_records(task, source)
            problems += data.gate_problems(report, gate)
            for line in data.audit_lines(report):
                data.warn(f"{task.data_name}: audit: {line}")
    data.refuse(problems, flags="--max-rejected / --max-repeated")
    if source.kind == "sample":
        data.warn(data.SAMPLE_WARNING)


def default_tasks(source: data.DataSource) -> tuple[str, ...]:
    """bimedix_bilingual, plus the tasks beside the paper's (MedArabiQ) that the source lists: the sample
    and a local index that names them; never the hub (MedArabiQ is not redistributed)."""
    extra = [t for t in registry.all_tasks() if not registry.benchmark(registry.parse_task(t).benchmark).paper]
    if source.kind == "hub":
        return DEFAULT_TASKS
    listed = {e.task for e in data.read_index(source.index)}
    return (*DEFAULT_TASKS, *(t for t in extra if t in listed))


def check_tasks(names: tuple[str, ...], manager) -> list[str]:
    known = set(manager.all_tasks)
    unknown = [n for n in names if n not in known]
    if unknown:
        ours = ", ".join(sorted(registry.groups()))
        raise RunError(f"unknown task {', '.join(unknown)}; groups: {ours}; tasks: bimedix_<en|ar>_<benchmark>[_gen]")
    return list(names)


@contextlib.contextmanager
def _api_endpoint(opts: RunOptions) -> Iterator[str]:
    """The OpenAI base URL: API_URL when given, else a FastChat stack started for the model and adapter."""
    if opts.api_url:
        yield opts.api_url
        return
    from serve.config import ServeError
    from serve.stack import ServeStack

    try:
        with ServeStack(opts.model, adapter=opts.adapter or None) as served:
            yield served.api_base
    except ServeError as err:
        raise RunError(f"backend api: {err}") from None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _system_instruction(system: str) -> str | None:
    if system == "none":
        return None
    return system_message() if system == "project" else system


def run(opts: RunOptions) -> Path:
    """Evaluate, then write results/<run>/results.json, samples/*.jsonl and the tables; returns the folder."""
    if opts.backend not in backends.BACKENDS:
        raise RunError(f"unknown backend {opts.backend!r} (use one of {', '.join(backends.BACKENDS)})")
    source = data.resolve_source(opts.data, opts.data_root)
    if source.kind != "hub":
        data.read_index(source.index)  # a malformed index fails now, before the model loads
    backends.check_model(opts.model)
    _quiet_lm_eval()
    gate = opts.gate()
    opts.tasks = opts.tasks or default_tasks(source)
    manager = task_manager(source, any(not t.startswith(registry.PREFIX) for t in opts.tasks), gate)
    tasks = check_tasks(opts.tasks, manager)
    data.REPORTS.clear()
    check_data(tasks, source, gate)

    import lm_eval

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if opts.backend == "hf":
            spec = backends.hf_spec(opts.model, opts.adapter, opts.device)
        elif opts.backend == "vllm":
            spec = backends.vllm_spec(opts.model, opts.adapter, opts.tensor_parallel_size)
        else:
            if opts.adapter:
                raise RunError(
                    "backend api: the adapter is the server's business; serve the model with it and drop ADAPTER"
                )
            base_url = stack.enter_context(_api_endpoint(opts))
            spec = backends.api_spec(opts.model, base_url, opts.api_model or Path(opts.model).name)
        for warning in spec.warnings:
            logging.getLogger("eval_tasks").warning(warning)
        model_args = {**spec.model_args, **opts.extra_model_args}
        results = lm_eval.simple_evaluate(
            model=spec.lm_eval_model,
            model_args=model_args,
            tasks=tasks,
            task_manager=manager,
            batch_size=opts.batch_size,
            limit=opts.limit,
            log_samples=opts.log_samples,
            apply_chat_template=opts.chat_template,
            system_instruction=_system_instruction(opts.system),
            bootstrap_iters=0 if opts.limit else 1000,
        )
    wall = time.monotonic() - started
    out_dir = opts.results_dir / opts.name()
    write_results(results, opts, source, model_args, spec.lm_eval_model, wall, out_dir)
    run_tables = [tables.load_run(out_dir)]
    tables.write_tables(run_tables, out_dir)
    return out_dir


def _audit_totals(reports: dict) -> dict[str, int]:
    """Rows per audit finding code over every task of the run (duplicate, repeated_question, ...)."""
    totals: dict[str, int] = {}
    for report in reports.values():
        for code, count in report["audit_counts"].items():
            totals[code] = totals.get(code, 0) + count
    return dict(sorted(totals.items()))


def _json_default(value):
    return str(value)


def write_results(results: dict, opts: RunOptions, source, model_args, lm_eval_model, wall, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = results.pop("samples", None) or {}
    ours = {t: v for t, v in results.get("versions", {}).items() if t.startswith(registry.PREFIX)}
    reports = {name: report.to_dict() for name, report in sorted(data.REPORTS.items())}
    adapter_config = None
    if opts.adapter and (Path(opts.adapter) / "adapter_config.json").is_file():
        adapter_config = json.loads((Path(opts.adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    results["bimedix"] = {
        "model": opts.model,
        "adapter": opts.adapter,
        "adapter_config": adapter_config,
        "backend": opts.backend,
        "lm_eval_model": lm_eval_model,
        "model_args": model_args,
        "eval_data": source.label,
        "eval_data_root": str(source.root) if source.root else None,
        "tasks_requested": list(opts.tasks),
        "task_versions": ours,
        "limit": opts.limit,
        "chat_template": opts.chat_template,
        "system_instruction": _system_instruction(opts.system),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 1),
        "questions": sum(v.get("effective", 0) for t, v in results.get("n-samples", {}).items() if t in ours),
        "rows_rejected": sum(r["rows_rejected"] for r in reports.values()),
        "audit": _audit_totals(reports),
        "audit_limits": {
            "max_rejected_share": opts.gate().max_rejected_share,
            "max_repeated_share": opts.gate().max_repeated_share,
        },
        "data": reports,
        "repository_commit": _git_commit(),
    }
    results.pop("pretty_env_info", None)
    path = out_dir / "results.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
    if samples:
        sample_dir = out_dir / "samples"
        sample_dir.mkdir(exist_ok=True)
        for task, rows in samples.items():
            with open(sample_dir / f"{task}.jsonl", "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
    return path
