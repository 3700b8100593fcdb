"""What is written beside each variant's JSON lines: manifest.json, README.md (the dataset card,
rendered from manifest.json by the Jinja template data_prep/templates/card.md.jinja) and
lengths.png (the token length histogram)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bimedix.files import sha256_file
from bimedix.paths import CHAT_TEMPLATE
from data_prep.config import Mix, Settings, display
from data_prep.decontam import EvalIndex
from data_prep.records import LANGUAGES, OUTPUT_KEYS, TASKS
from data_prep.states import DECONTAMINATED, TRAIN, VAL
from data_prep.tokens import TokenizerInfo

CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "card.md.jinja"

NORMALISATION = (
    "NFC; tatweel, bidi control marks and BOMs removed; Arabic-Indic digits written as ASCII digits; "
    "CRLF -> LF; outer whitespace stripped; diacritics and mixed-script text kept"
)


def _ratio(values: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = dict(values)
    if values.get("ar") and values.get("en"):
        out["ar_per_en"] = round(values["ar"] / values["en"], 4)
        out["as_ar_to_en"] = f"1:{values['en'] / values['ar']:.2f}"
    return out


def _stats(cols, status, copies, tokens, chars, train: int, val: int) -> dict[str, Any]:
    written = (status == train) | (status == val)
    lines = copies.astype(np.int64)
    by_split = {"train": status == train, "val": status == val}
    counts: dict[str, Any] = {name: int(lines[mask].sum()) for name, mask in by_split.items()}
    counts["distinct_records"] = int(written.sum())
    counts["by_language"] = {lang: int(lines[written & (cols.language == i)].sum()) for i, lang in enumerate(LANGUAGES)}
    counts["by_task"] = {task: int(lines[written & (cols.task == i)].sum()) for i, task in enumerate(TASKS)}
    counts["by_split_language_task"] = {
        split: {
            lang: {
                task: int(lines[mask & (cols.language == i) & (cols.task == t)].sum()) for t, task in enumerate(TASKS)
            }
            for i, lang in enumerate(LANGUAGES)
        }
        for split, mask in by_split.items()
    }
    weighted = tokens * lines
    token_counts: dict[str, Any] = {"total": int(weighted[written].sum())}
    token_counts |= {split: int(weighted[mask].sum()) for split, mask in by_split.items()}
    token_counts["by_language"] = {
        lang: int(weighted[written & (cols.language == i)].sum()) for i, lang in enumerate(LANGUAGES)
    }
    token_counts["by_task"] = {task: int(weighted[written & (cols.task == i)].sum()) for i, task in enumerate(TASKS)}
    per_record = tokens[written]
    if len(per_record):
        token_counts["per_record"] = {
            "min": int(per_record.min()),
            "mean": round(float(per_record.mean()), 1),
            "p50": int(np.percentile(per_record, 50)),
            "p95": int(np.percentile(per_record, 95)),
            "max": int(per_record.max()),
        }
    token_counts["characters"] = int((chars * lines)[written].sum())
    ratio = {"records": _ratio(counts["by_language"]), "tokens": _ratio(token_counts["by_language"])}
    return {"counts": counts, "tokens": token_counts, "ratio": ratio, "per_record_tokens": per_record}


def _histogram(path: Path, per_language: dict[str, np.ndarray], bins: int, title: str, tokenizer: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    values = [v for v in per_language.values() if len(v)]
    if values:
        edges = np.histogram_bin_edges(np.concatenate(values), bins=bins)
        for lang, data in per_language.items():
            if len(data):
                ax.hist(data, bins=edges, alpha=0.6, label=f"{lang} ({len(data)})")
        ax.legend()
    ax.set_xlabel(f"tokens per record (rendered chat template, {tokenizer})")
    ax.set_ylabel("records")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_card(
    out: Path,
    *,
    mix: Mix,
    settings: Settings,
    sources: list[dict],
    accounting: list[dict],
    cols,
    status: np.ndarray,
    copies: np.ndarray,
    tokens: np.ndarray,
    chars: np.ndarray,
    notes: dict,
    tokenizer: TokenizerInfo,
    eval_index: EvalIndex | None,
    digests: dict[str, str],
    written_lines: dict[str, int],
) -> dict:
    stats = _stats(cols, status, copies, tokens, chars, TRAIN, VAL)
    stats.pop("per_record_tokens")
    written = (status == TRAIN) | (status == VAL)
    per_language = {lang: tokens[written & (cols.language == i)] for i, lang in enumerate(LANGUAGES)}
    _histogram(out / "lengths.png", per_language, settings.histogram.bins, f"{mix.name}: token lengths", tokenizer.name)
    decontaminated = {}
    if eval_index is not None:
        for row in accounting:
            decontaminated[row["source"]] = row["decontaminated"]
    dropped_by_task: dict[str, int] = {}
    if eval_index is not None:
        for item in cols.eval_item[status == DECONTAMINATED]:
            if item >= 0:
                task = eval_index.tasks[int(item)]
                dropped_by_task[task] = dropped_by_task.get(task, 0) + 1
    manifest = {
        "variant": mix.name,
        "description": mix.description,
        "mix": {"path": display(mix.path), "sha256": sha256_file(mix.path)},
        "seed": mix.seed,
        "val_fraction": mix.val_fraction,
        "language_ratio_target": mix.language_ratio,
        "system_message": mix.system_message,
        "schema": {"keys": list(OUTPUT_KEYS), "metadata": "JSON-encoded string", "provenance": "{file, line}"},
        "chat_template": {"path": display(CHAT_TEMPLATE), "sha256": sha256_file(CHAT_TEMPLATE)},
        "tokenizer": {"name": tokenizer.name, "sha256": tokenizer.sha256, "bos": tokenizer.bos, "eos": tokenizer.eos},
        "output_dir": display(out.parent / mix.name),
        "sources": [
            {**source, "counts": {k: v for k, v in counts.items() if k != "source"}}
            for source, counts in zip(sources, accounting, strict=True)
        ],
        "filters": {
            "normalisation": NORMALISATION,
            "language": {"detected_by": "script", "min_arabic_share": settings.language.min_arabic_share},
            "dedup": {
                "exact": "64-bit hash of the canonical word sequence (case, punctuation, diacritics, alef forms folded)",
                "near": (
                    {
                        "method": "MinHash LSH over word shingles",
                        "shingle_words": settings.dedup.shingle,
                        "num_perm": settings.dedup.num_perm,
                        "bands": settings.dedup.bands,
                        "threshold_jaccard": round(
                            (1 / settings.dedup.bands) ** (settings.dedup.bands / settings.dedup.num_perm), 3
                        ),
                    }
                    if settings.dedup.near
                    else None
                ),
                "compared": "MCQA: context + question + options; QA and chat: every turn",
                "keeps": "the first occurrence in mix order",
            },
            "decontamination": (
                {
                    **eval_index.summary(),
                    "compared": "question + options (the question turns of a chat)",
                    "min_coverage": settings.decontamination.min_coverage,
                    "dropped_by_source": decontaminated,
                    "dropped_by_eval_task": dict(sorted(dropped_by_task.items())),
                }
                if eval_index is not None
                else {"enabled": False, "reason": "--no-decontaminate"}
            ),
            "precedence": "rejected > decontaminated > exact duplicate > near duplicate > sampled out",
        },
        **stats,
        "language_targets": notes.get("language_targets"),
        "outputs": {
            "train.jsonl": {"rows": written_lines["train"], "sha256": digests["train"]},
            "val.jsonl": {"rows": written_lines["val"], "sha256": digests["val"]},
            "rejects.jsonl": {
                "rows": sum(row["rejected"] for row in accounting),
                "sha256": sha256_file(out / "rejects.jsonl"),
            },
            "lengths.png": {"sha256": sha256_file(out / "lengths.png")},
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(render_card(manifest), encoding="utf-8")
    return manifest


def audit_lines(manifest: dict) -> list[str]:
    """`source: file:line,...: code xN: message` for every audit finding of every input file."""
    return [
        f"{source['name']}: {finding['at']}: {finding['code']} x{finding['count']}: {finding['message']}"
        for source in manifest["sources"]
        for entry in source["files"]
        for finding in entry.get("audit", {}).get("findings", [])
    ]


def render_card(manifest: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(CARD_TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters["fmt"] = lambda value: f"{value:,}"
    env.filters["fmt_share"] = lambda value: f"{value:g}"
    template = env.get_template(CARD_TEMPLATE.name)
    return template.render(m=manifest, tasks=TASKS, audit_lines=audit_lines(manifest))
