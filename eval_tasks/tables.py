"""The paper's three tables (English, Arabic, Bilingual) from one or more runs, beside the published rows.

Shape, as in the upstream README: Model | CKG CBio CMed MedGen ProMed Ana MedMCQA MedQA PubmedQA | AVG,
accuracy in percent with one decimal. AVG is the plain mean of the nine columns (not weighted by the
number of questions). A Bilingual cell is the plain mean of the English and Arabic scores of that
column: with translated, row-parallel test sets this equals the accuracy on the pooled English+Arabic
questions. Benchmarks outside the paper (MedArabiQ, native Arabic) are columns after AVG in their
language's table, never part of AVG. A missing cell is `–` (Markdown), empty (CSV), no bar (PNG).
Written as tables.md, table_<name>.csv and tables.png (matplotlib, Agg).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eval_tasks import registry

TABLES = ("english", "arabic", "bilingual")
TITLES = {"english": "English Benchmark", "arabic": "Arabic Benchmark", "bilingual": "Bilingual Benchmark"}
LANGUAGE_OF = {"english": "en", "arabic": "ar"}
METRIC = "acc,none"


class TablesError(ValueError):
    """A results file the tables cannot read (one line naming it)."""


@dataclass
class Run:
    """The scores of one run: {language: {column: accuracy in [0, 1]}}, and how it was made."""

    label: str
    scores: dict[str, dict[str, float]]
    note: str
    generative: bool = False
    data: str | None = None  # sample | hub | the index file it read


def columns() -> list[str]:
    """The paper's nine columns (AVG is their mean)."""
    return [b.column for b in registry.paper_benchmarks()]


def extra_columns(table: str) -> list[str]:
    """Columns beside the paper's, after AVG: benchmarks outside the paper in this table's language."""
    language = LANGUAGE_OF.get(table)
    return [b.column for b in registry.benchmarks() if not b.paper and language in b.languages]


def all_columns(table: str) -> list[str]:
    return [*columns(), "AVG", *extra_columns(table)]


def load_run(path: Path, label: str | None = None) -> Run:
    """A results folder (or its results.json) -> Run. Log-likelihood tasks win over *_gen ones."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TablesError(
            f"{file}: not found (give a results/<run> folder written by `python -m eval_tasks run`)"
        ) from None
    except json.JSONDecodeError as err:
        raise TablesError(f"{file}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(results, dict) or "results" not in results:
        raise TablesError(f"{file}: no 'results' mapping; not an lm-eval results file")
    by_variant: dict[bool, dict[str, dict[str, float]]] = {False: {}, True: {}}
    for task, metrics in results["results"].items():
        try:
            task_id = registry.parse_task(task)
        except KeyError:
            continue  # groups and foreign tasks
        if METRIC in metrics and metrics[METRIC] is not None:
            column = registry.benchmark(task_id.benchmark).column
            by_variant[task_id.generative].setdefault(task_id.language, {})[column] = float(metrics[METRIC])
    generative = not by_variant[False] and bool(by_variant[True])
    scores = by_variant[generative]
    if not scores:
        raise TablesError(f"{file}: holds no bimedix_* task scores")
    meta = results.get("bimedix", {})
    model = meta.get("model") or results.get("config", {}).get("model_args", "?")
    adapter = meta.get("adapter")
    data = meta.get("eval_data")
    if label is None:
        label = Path(str(model)).name + (f" + {Path(adapter).name}" if adapter else "")
        label += f" [{source_label(data)}]"
        if generative:
            label += " (generative)"
    audit = meta.get("audit") or {}
    found = ", ".join(f"{code} {count}" for code, count in audit.items() if count)
    note = (
        f"{label}: model {model}"
        + (f", adapter {adapter}" if adapter else "")
        + f", backend {meta.get('backend', '?')}, data {data or '?'}"
        + (f", limit {meta['limit']} per task" if meta.get("limit") else "")
        + (f", {meta['questions']} questions" if meta.get("questions") else "")
        + (f", {meta['rows_rejected']} rows not scored (listed in results.json)" if meta.get("rows_rejected") else "")
        + (f"; audit (rows): {found}" if found else "")
        + (f", {meta['date']}" if meta.get("date") else "")
    )
    return Run(label, scores, note, generative, data)


def source_label(data: str | None) -> str:
    """How a row names its data: 'sample data', 'hub', or the local index (its folder for index.yaml)."""
    if not data:
        return "data unknown"
    if data == "sample":
        return "sample data"
    if data == "hub":
        return "hub"
    path = Path(data)
    return path.parent.name if path.name == "index.yaml" else path.stem


def _row(model: str, scores: list[float | None], extras: dict[str, float | None] | None = None) -> dict:
    known = [s for s in scores if s is not None]
    avg = sum(known) / len(known) if len(known) == len(scores) else None
    return {"Model": model, **dict(zip(columns(), scores, strict=True)), "AVG": avg, **(extras or {})}


def run_row(run: Run, table: str) -> dict:
    """One run's row of a table, in percent (None where the run lacks a language or a task)."""
    if table in LANGUAGE_OF:
        lang = run.scores.get(LANGUAGE_OF[table], {})
        cells = [100 * lang[c] if c in lang else None for c in columns()]
        extras = {c: 100 * lang[c] if c in lang else None for c in extra_columns(table)}
    else:
        en, ar = run.scores.get("en", {}), run.scores.get("ar", {})
        cells = [100 * (en[c] + ar[c]) / 2 if c in en and c in ar else None for c in columns()]
        extras = {}
    return _row(run.label, cells, extras)


def reference_rows(table: str) -> list[dict]:
    refs = registry.references()
    if refs["columns"] != columns():
        raise TablesError("eval_tasks/reference_results.yaml: columns differ from benchmarks.yaml")
    return [{**_row(r["model"], list(r["scores"])), "AVG": r["avg"]} for r in refs["tables"][table]]


def build_tables(runs: list[Run]) -> dict[str, pd.DataFrame]:
    out = {}
    for table in TABLES:
        rows = reference_rows(table) + [run_row(run, table) for run in runs]
        out[table] = pd.DataFrame(rows, columns=["Model", *all_columns(table)])
    return out


def _markdown(frame: pd.DataFrame) -> str:
    """The table in Markdown, `–` for a missing cell (tabulate prints a NaN float as 'nan')."""
    cells = frame.astype(object).where(frame.notna(), None)
    return cells.to_markdown(index=False, floatfmt=".1f", missingval="–")


def write_tables(runs: list[Run], out_dir: Path) -> list[Path]:
    """tables.md, table_{english,arabic,bilingual}.csv and tables.png in out_dir; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs)
    source = registry.references()["source"]
    written = []
    lines = [
        "# BiMediX benchmark tables",
        "",
        "Accuracy (%), 0-shot. AVG: plain mean of the nine columns. Bilingual: mean of the English and Arabic",
        f"score of each column. Published rows: the upstream README ({source}). `–`: not run or not published.",
    ]
    beside = [c for table in TABLES for c in extra_columns(table)]
    if beside:
        lines.append(f"Beside the paper's columns, not in AVG: {', '.join(beside)} (native Arabic questions).")
    sample = [run.label for run in runs if run.data == "sample"]
    if sample:
        lines.append(
            f"{', '.join(sample)}: the embedded SAMPLE data (6 synthetic questions per task), a smoke test, "
            "not comparable with the published rows."
        )
    lines.append("")
    for table in TABLES:
        csv_path = out_dir / f"table_{table}.csv"
        tables[table].round(2).to_csv(csv_path, index=False)
        written.append(csv_path)
        lines += [f"## {TITLES[table]}", "", _markdown(tables[table]), ""]
    lines += ["## Runs", ""] + [f"- {run.note}" for run in runs] + [""]
    md_path = out_dir / "tables.md"
    md_path.write_text("\n".join(lines), encoding="utf-8")
    written.insert(0, md_path)
    written.append(plot_tables(tables, out_dir / "tables.png", new_rows=len(runs)))
    return written


def plot_tables(tables: dict[str, pd.DataFrame], path: Path, new_rows: int) -> Path:
    """Grouped bars per column (and AVG), one bar per model; this run's rows drawn solid and outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(TABLES), 1, figsize=(13, 4.2 * len(TABLES)), constrained_layout=True)
    for ax, table in zip(axes, TABLES, strict=True):
        labels = all_columns(table)
        frame = tables[table]
        n = len(frame)
        width = 0.8 / max(n, 1)
        for i, (_, row) in enumerate(frame.iterrows()):
            present = [x for x, c in enumerate(labels) if pd.notna(row[c])]  # a missing cell gets no bar
            is_new = i >= n - new_rows
            ax.bar(
                [x + (i - (n - 1) / 2) * width for x in present],
                [row[labels[x]] for x in present],
                width,
                label=row["Model"],
                alpha=1.0 if is_new else 0.55,
                edgecolor="black" if is_new else "none",
            )
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(TITLES[table])
        ax.legend(fontsize=7, ncol=3, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
