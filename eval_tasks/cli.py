"""python -m eval_tasks: run the BiMediX benchmark, write the paper's tables, check benchmark data.

    python -m eval_tasks run [--model DIR] [--adapter DIR] [--backend hf|vllm|api] [--data sample|hub|DIR] ...
    python -m eval_tasks tables results/RUN [results/RUN2 ...] [--out DIR]
    python -m eval_tasks check-data [--data sample|hub|DIR] [--data-root DIR]
    python -m eval_tasks list

Empty option values count as not given, so the Makefile can pass its variables through unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

from eval_tasks import backends, data, evaluate, registry, tables

ERRORS = (data.EvalDataError, backends.BackendError, evaluate.RunError, tables.TablesError)


def _given(value: str | None) -> str | None:
    return value if value not in (None, "") else None


def _model_args(text: str | None) -> dict:
    """k=v,k=v -> dict, values typed as lm-eval types them (True, 4, 0.9)."""
    from lm_eval.utils import simple_parse_args_string

    bad = [item for item in (text or "").split(",") if item.strip() and "=" not in item]
    if bad:
        raise evaluate.RunError(f"--model-args: {bad[0]!r} is not key=value (pairs separated by commas)")
    return simple_parse_args_string(text or "")


def _batch_size(text: str | None) -> int | str:
    value = _given(text) or "8"
    return int(value) if value.isdigit() else value


def _share(text: str | None, flag: str) -> float | None:
    value = _given(text)
    if value is None:
        return None
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0 <= share <= 1:
        raise evaluate.RunError(f"{flag}: {value!r} is not a share between 0 and 1")
    return share


def _gate(args: argparse.Namespace):
    from bimedix.audit import Gate

    default = data.default_gate()
    rejected = _share(args.max_rejected, "--max-rejected")
    repeated = _share(args.max_repeated, "--max-repeated")
    return Gate(
        default.max_rejected_share if rejected is None else rejected,
        default.max_repeated_share if repeated is None else repeated,
    )


def cmd_run(args: argparse.Namespace) -> int:
    defaults = {f.name: f.default for f in fields(evaluate.RunOptions) if not callable(f.default)}
    limit = _given(args.limit)
    opts = evaluate.RunOptions(
        model=_given(args.model) or defaults["model"],
        adapter=_given(args.adapter),
        backend=_given(args.backend) or "hf",
        tasks=tuple(t.strip() for t in (_given(args.tasks) or "").split(",") if t.strip()),
        data=_given(args.data) or "sample",
        data_root=_given(args.data_root),
        run_name=_given(args.run_name),
        results_dir=Path(_given(args.results_dir) or "results"),
        limit=int(limit) if limit else None,
        batch_size=_batch_size(args.batch_size),
        device=_given(args.device),
        chat_template=args.chat_template,
        system=_given(args.system) or "none",
        api_url=_given(args.api_url),
        api_model=_given(args.api_model),
        tensor_parallel_size=int(_given(args.tensor_parallel_size) or 1),
        log_samples=not args.no_samples,
        extra_model_args=_model_args(args.model_args),
        max_rejected_share=_share(args.max_rejected, "--max-rejected"),
        max_repeated_share=_share(args.max_repeated, "--max-repeated"),
    )
    out_dir = evaluate.run(opts)
    print((out_dir / "tables.md").read_text(encoding="utf-8"))
    print(f"results: {out_dir}/results.json, tables: {out_dir}/tables.md, table_*.csv, tables.png")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    labels = args.label or []
    if not args.runs:
        args.runs = sorted(str(p.parent) for p in Path("results").glob("*/results.json"))
        if not args.runs:
            raise tables.TablesError("results/: no run folders with results.json (run `make eval` first)")
    runs = [tables.load_run(Path(p), labels[i] if i < len(labels) else None) for i, p in enumerate(args.runs)]
    repeated = {run.label for run in runs if sum(r.label == run.label for r in runs) > 1}
    for path, run in zip(args.runs, runs, strict=True):
        if run.label in repeated:  # tell same-model rows apart by their run folder
            folder = Path(path) if Path(path).is_dir() else Path(path).parent
            run.note = run.note.replace(run.label, f"{run.label} ({folder.name})", 1)
            run.label = f"{run.label} ({folder.name})"
    out = Path(args.out) if args.out else (Path(args.runs[0]) if len(args.runs) == 1 else Path("results") / "tables")
    for path in tables.write_tables(runs, out):
        print(f"wrote {path}")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    """Load and audit every task from the source: rows in the file, selected, scored, rejected, and the
    audit's findings. Exits non-zero (one line) when a source is refused by the audit's limits."""
    source = data.resolve_source(_given(args.data) or "sample", _given(args.data_root))
    gate = _gate(args)
    names = [t.strip() for t in (_given(args.tasks) or "").split(",") if t.strip()] or list(registry.all_tasks())
    if _given(args.tasks):
        pass
    elif source.kind != "hub":  # every task the index (or the sample's) lists
        indexed = {e.task for e in data.read_index(source.index)}
        names = [n for n in names if n in indexed]
    else:  # every task with a hub source
        names = [n for n in names if not registry.benchmark(registry.parse_task(n).benchmark).local_only]
    per_file_total: dict[str, int] = {}
    per_file_selected: Counter = Counter()
    print(f"{'task':40} {'source':58} {'in file':>7} {'selected':>8} {'scored':>6} {'rejected':>8}")
    total_scored = total_rejected = 0
    problems: list[str] = []
    scored: list[dict] = []
    for name in names:
        items, report = data.load_records(name, source)
        position = 0
        for sub in report.sources:  # the items come source by source, in order
            for item in items[position : position + sub.rows_scored]:
                scored.append({"task": name, "file": sub.source, "line": item.line, "letter": item.letter,
                               "options": len(item.options), "id": item.id})  # fmt: skip
            position += sub.rows_scored
        for sub in report.sources:
            print(
                f"{name:40} {sub.source[-58:]:58} {sub.rows_in_source:7} {sub.rows_selected:8} {sub.rows_scored:6} {len(sub.rejects):8}"
            )
            if sub.params.get("cop_evidence"):
                print(f"    MedMCQA cop: {sub.params['cop_evidence']}")
            for finding in sub.audit.get("findings", []):
                kind = "not scored" if finding["rejected"] else "scored, reported"
                print(
                    f"    audit ({kind}): {finding['at']}: {finding['code']} x{finding['count']}: {finding['message']}"
                )
            for reject in sub.rejects[: args.show_rejects]:
                print(f"    not scored: {reject.where}: {reject.reason}")
            per_file_total[sub.source] = sub.rows_in_source
            per_file_selected[sub.source] += sub.rows_selected
            total_scored += sub.rows_scored
            total_rejected += len(sub.rejects)
        problems += data.gate_problems(report, gate)
    print(f"{len(names)} tasks from {source.label}: {total_scored} rows scored, {total_rejected} rejected")
    for file, total in per_file_total.items():
        if per_file_selected[file] != total:
            print(
                f"  {file}: {total} rows, {per_file_selected[file]} selected by the tasks above, {total - per_file_selected[file]} by none"
            )
    if args.items:
        _write_items(Path(args.items), scored)
    data.refuse(problems, flags="--max-rejected / --max-repeated")
    return 0


def _write_items(path: Path, scored: list[dict]) -> None:
    """Every scored item, one JSON line each: task, file, line, gold letter (what a run would score)."""
    import json

    with open(path, "w", encoding="utf-8") as out:
        for row in scored:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def cmd_list(args: argparse.Namespace) -> int:
    for group, members in registry.groups().items():
        print(f"{group}: {' '.join(members)}")
    return 0


def _limit_flags(sub: argparse.ArgumentParser) -> None:
    limits = data.default_gate()
    sub.add_argument(
        "--max-rejected",
        help=f"refuse a source when more than this share of its rows cannot be scored (default {limits.max_rejected_share}, settings.yaml)",
    )
    sub.add_argument(
        "--max-repeated",
        help=f"refuse a source when more than this share of its rows repeats another's question (default {limits.max_repeated_share})",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m eval_tasks", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate a model on bimedix_* tasks and write results/<run>/ with the tables")
    run.add_argument("--model", help="model folder or hub id (default: models/tiny-bimedix-moe)")
    run.add_argument("--adapter", help="LoRA/QLoRA adapter folder (hf: peft; vllm: LoRA request)")
    run.add_argument("--backend", help="hf (default), vllm or api")
    run.add_argument(
        "--tasks",
        help="comma-separated tasks or groups (default: bimedix_bilingual, the paper's 18, and the tasks beside "
        "them, MedArabiQ, when the data source lists them)",
    )
    run.add_argument("--data", help="sample (default), hub, or a folder with index.yaml (or an index file)")
    run.add_argument("--data-root", help="where the index's paths resolve (default: the index's folder)")
    run.add_argument("--run-name", help="results/<run-name>/ (default: <model>[+<adapter>]-<backend>-<data>)")
    run.add_argument("--results-dir", help="default: results")
    run.add_argument("--limit", help="at most this many questions per task (smoke tests)")
    run.add_argument("--batch-size", help="default 8 (hf accepts auto)")
    run.add_argument("--device", help="hf: cpu, cuda, cuda:0 (default: cuda when available)")
    run.add_argument("--chat-template", action="store_true", help="wrap prompts in the tokenizer's chat template")
    run.add_argument(
        "--system", help="with --chat-template: none (default), project (templates/system_message.txt) or a text"
    )
    run.add_argument(
        "--api-url", help="api: the OpenAI base URL of a running FastChat server, http://127.0.0.1:PORT/v1"
    )
    run.add_argument("--api-model", help="api: the served model name (default: the model folder's name)")
    run.add_argument("--tensor-parallel-size", help="vllm: GPUs per model (default 1)")
    run.add_argument("--model-args", help="extra lm-eval model_args, k=v,k=v (override the backend's)")
    run.add_argument("--no-samples", action="store_true", help="do not write per-question samples/*.jsonl")
    _limit_flags(run)
    run.set_defaults(func=cmd_run)

    tab = sub.add_parser("tables", help="the three paper tables (Markdown, CSV, PNG) from one or more result folders")
    tab.add_argument(
        "runs", nargs="*", help="results/<run> folders or their results.json (default: every run in results/)"
    )
    tab.add_argument("--out", help="output folder (default: the run's folder, or results/tables for several)")
    tab.add_argument("--label", action="append", help="row label for each run, in order (repeatable)")
    tab.set_defaults(func=cmd_tables)

    check = sub.add_parser("check-data", help="load every task's data and count rows read, selected, scored, rejected")
    check.add_argument("--data", help="sample (default), hub, or a folder with index.yaml (or an index file)")
    check.add_argument("--data-root", help="where the index's paths resolve (default: the index's folder)")
    check.add_argument("--tasks", help="comma-separated task names (default: every task the source lists)")
    check.add_argument("--show-rejects", type=int, default=5, help="rejected rows to list per source (default 5)")
    _limit_flags(check)
    check.add_argument("--items", help="write every scored item here (JSON lines: task, file, line, gold letter)")
    check.set_defaults(func=cmd_check_data)

    lst = sub.add_parser("list", help="the groups and their tasks")
    lst.set_defaults(func=cmd_list)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
