"""What is written beside each variant's JSON lines: manifest.json, README.md (the dataset card)
and lengths.png (the token length histogram)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from bimedix.paths import CHAT_TEMPLATE
from data_prep.config import Mix, Settings, display
from data_prep.decontam import EvalIndex
from data_prep.records import LANGUAGES, OUTPUT_KEYS, TASKS
from data_prep.tokens import TokenizerInfo

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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    from data_prep.build import DECONTAMINATED, TRAIN, VAL

    stats = _stats(cols, status, copies, tokens, chars, TRAIN, VAL)
    per_record = stats.pop("per_record_tokens")
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
        "mix": {"path": display(mix.path), "sha256": _sha256(mix.path)},
        "seed": mix.seed,
        "val_fraction": mix.val_fraction,
        "language_ratio_target": mix.language_ratio,
        "system_message": mix.system_message,
        "schema": {"keys": list(OUTPUT_KEYS), "metadata": "JSON-encoded string", "provenance": "{file, line}"},
        "chat_template": {"path": display(CHAT_TEMPLATE), "sha256": _sha256(CHAT_TEMPLATE)},
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
                "sha256": _sha256(out / "rejects.jsonl"),
            },
            "lengths.png": {"sha256": _sha256(out / "lengths.png")},
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_card_text(manifest, per_record), encoding="utf-8")
    return manifest


def _card_text(m: dict, per_record: np.ndarray) -> str:
    c, t, r = m["counts"], m["tokens"], m["ratio"]
    lines = [
        "---",
        f"pretty_name: BiMediX recipes, {m['variant']} variant",
        "language: [" + ", ".join(lang for lang, n in c["by_language"].items() if n) + "]",
        "task_categories: [text-generation, question-answering]",
        "tags: [medical, instruction-tuning]",
        "---",
        "",
        f"# {m['variant']}",
        "",
        m["description"] or "",
        "",
        "> Research data. Not for clinical use: nothing here is medical advice, and a model trained on it "
        "must not be used for diagnosis, treatment or any clinical decision.",
        "",
        f"Built by `python -m data_prep build --mix {m['mix']['path']}` (seed {m['seed']}). Each line of "
        "`train.jsonl` / `val.jsonl` is one conversation in OpenAI `messages` form for Axolotl's "
        "`type: chat_template` loader, with the keys " + ", ".join(f"`{k}`" for k in m["schema"]["keys"]) + ".",
        "",
        "## Files",
        "",
        "| file | rows | sha256 |",
        "|---|---:|---|",
    ]
    for name, info in m["outputs"].items():
        lines.append(f"| {name} | {info.get('rows', '')} | `{info['sha256'][:16]}` |")
    lines += [
        "",
        "## Sources",
        "",
        "Every row read is accounted for: read = written + rejected + deduplicated + decontaminated + sampled out.",
        "",
        "| source | format | read | written | rejected | duplicates (exact / near) | decontaminated | sampled out |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in m["sources"]:
        k = s["counts"]
        lines.append(
            f"| {s['name']} | {s['format']} | {k['read']} | {k['written']} | {k['rejected']} | "
            f"{k['duplicates_exact']} / {k['duplicates_near']} | {k['decontaminated']} | {k['sampled_out']} |"
        )
    lines += [
        "",
        "Input files and their sha256 are in `manifest.json`; rejected rows, with file, line and reason, in `rejects.jsonl`.",
        "",
    ]
    lines += [
        "## Languages and tasks",
        "",
        "| split | language | " + " | ".join(TASKS) + " |",
        "|---|---|" + "---:|" * len(TASKS),
    ]
    for split, by_lang in c["by_split_language_task"].items():
        for lang, by_task in by_lang.items():
            lines.append(f"| {split} | {lang} | " + " | ".join(str(by_task[task]) for task in TASKS) + " |")
    rec, tok = r["records"], r["tokens"]
    lines += [
        "",
        f"Arabic : English is {rec.get('as_ar_to_en', 'n/a')} by records and {tok.get('as_ar_to_en', 'n/a')} by tokens"
        + (
            " (target "
            + ":".join(f"{v:g}" for v in m["language_ratio_target"].values())
            + " for "
            + ":".join(m["language_ratio_target"])
            + ")."
            if m["language_ratio_target"]
            else "."
        ),
        "",
        "## Tokens",
        "",
        f"Counted with `{m['tokenizer']['name']}` on the rendered chat template (`{m['chat_template']['path']}`), "
        "which is what training sees.",
        "",
        f"- total: {t['total']:,} (train {t['train']:,}, val {t['val']:,}); characters: {t['characters']:,}",
        f"- by language: {', '.join(f'{k} {v:,}' for k, v in t['by_language'].items())}",
        f"- by task: {', '.join(f'{k} {v:,}' for k, v in t['by_task'].items())}",
    ]
    if "per_record" in t:
        p = t["per_record"]
        lines.append(
            f"- per record: min {p['min']}, mean {p['mean']}, median {p['p50']}, p95 {p['p95']}, max {p['max']}"
        )
    lines += ["", "![token lengths](lengths.png)", "", "## Filters", ""]
    f = m["filters"]
    lines.append(f"- normalisation: {f['normalisation']}")
    lines.append(f"- language: by script, Arabic from {f['language']['min_arabic_share']:.0%} Arabic letters")
    near = f["dedup"]["near"]
    lines.append(
        "- duplicates: exact on canonical text; near: "
        + (
            f"MinHash LSH, {near['shingle_words']}-word shingles, {near['num_perm']} permutations in {near['bands']} bands (Jaccard ~{near['threshold_jaccard']})"
            if near
            else "off"
        )
        + f"; compared: {f['dedup']['compared']}; {f['dedup']['keeps']}"
    )
    d = f["decontamination"]
    if d.get("enabled") is False:
        lines.append("- decontamination: **off** (built with --no-decontaminate)")
    else:
        lines.append(
            f"- decontamination: {d['ngram']}-gram overlap of {d['compared']} with {d['items']} evaluation items "
            f"from `{d['index']}` (min coverage {d['min_coverage']}); dropped per source: "
            + (", ".join(f"{k} {v}" for k, v in d["dropped_by_source"].items()) or "none")
        )
    lines += [
        "",
        "## Use with Axolotl",
        "",
        "```yaml",
        "datasets:",
        f"  - path: {m['output_dir']}/train.jsonl",
        "    ds_type: json",
        "    type: chat_template",
        "    field_messages: messages",
        "    chat_template: jinja",
        "    chat_template_jinja: templates/chat_template.jinja",
        "    roles_to_train: [assistant]",
        "```",
        "",
    ]
    return "\n".join(lines)
