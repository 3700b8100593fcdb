"""Human refinement of translations: export the review queue, import reviewed files, build the outputs.

The queue has one row per segment (question, option:A, ..., turn:3:assistant) of every item the
automatic QA did not pass, with the columns of REVIEW_COLUMNS: `reason` holds the failures of that
segment and of the whole item, `checks` the names of the checks that failed (checks.CHECKS), so a
queue can be split by check. A reviewer fills in two of them:
- `edited_translation`: the corrected Arabic text (with real numbers and names, no placeholders);
- `verdict`: `accept` (the machine translation is right as it is) or `reject` (drop the item);
  left empty with an edit, the edit counts.
Rows left blank are simply not reviewed yet. An edit always wins over the machine translation,
also over later machine runs. An item leaves the queue when every segment has a decision; its
provenance status becomes `reviewed` (all accepted), `edited` (at least one edit) or it is
dropped (a reject). Items that passed QA keep the status `machine` unless reviewed too (export
them with --all for spot checks).

Import is all or nothing: every problem in the file (unknown id or segment, a source or machine
translation that changed since the export, an unknown verdict, an edit with `reject`, a duplicate
row) is reported with its row or line, and nothing is written. Decisions are stored in
reviews.jsonl, keyed by item and segment; re-importing the same file changes nothing, not even a
file's modification time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bimedix.files import sha256_file
from data_prep.llm.files import json_line, read_jsonl, sha256_text, write_if_changed
from data_prep.llm.notation import number_differences
from data_prep.llm.protect import PLACEHOLDER
from data_prep.llm.records import PARSE_KIND

REVIEW_COLUMNS = [
    "id",
    "segment",
    "status",
    "source",
    "machine_translation",
    "back_translation",
    "chrf",
    "item_chrf",
    "length_ratio",
    "reason",
    "checks",
    "source_sha",
    "machine_sha",
    "verdict",
    "edited_translation",
]
VERDICTS = {"", "accept", "reject"}
OUTPUT = "translated.jsonl"  # machine (passed QA), reviewed and edited items: what a mix includes
UNVERIFIED = "unverified.jsonl"  # with --keep-unverified only: failed QA, not reviewed; a mix may add it


class ReviewError(ValueError):
    """A reviewed file that cannot be imported; the message lists every problem, one per line."""


def _short_sha(text: str) -> str:
    return sha256_text(text)[:16]


def load_run(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.exists():
        raise ReviewError(f"{run_dir}: no run.json; is this a translation run folder (`translate --out`)?")
    return json.loads(path.read_text(encoding="utf-8"))


def load_ledger(run_dir: Path) -> list[dict]:
    return list(read_jsonl(run_dir / "ledger.jsonl"))


def load_reviews(run_dir: Path) -> dict[tuple[str, str], dict]:
    path = run_dir / "reviews.jsonl"
    if not path.exists():
        return {}
    return {(r["id"], r["segment"]): r for r in read_jsonl(path)}


@dataclass
class ItemState:
    status: str  # machine | reviewed | edited | unverified | pending | rejected_by_reviewer | error
    texts: dict[str, str] = field(default_factory=dict)
    reviewed: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stale: int = 0


def item_state(row: dict, reviews: dict[tuple[str, str], dict], keep_unverified: bool) -> ItemState:
    if row["status"] == "error":
        return ItemState("error")
    decisions = {}
    stale = 0
    for segment, source_sha in row["source_sha"].items():
        review = reviews.get((row["id"], segment))
        if review is None:
            continue
        machine = row["translation"].get(segment, "")
        if review["source_sha"] != source_sha or (
            review["decision"] == "accept" and review["machine_sha"] != _short_sha(machine)
        ):
            stale += 1  # reviewed a text that has changed since: the decision no longer applies
            continue
        decisions[segment] = review
    state = ItemState("machine", stale=stale)
    if any(d["decision"] == "reject" for d in decisions.values()):
        state.status = "rejected_by_reviewer"
        return state
    for segment in row["source"]:
        decision = decisions.get(segment)
        if decision is not None and decision["decision"] == "edit":
            state.texts[segment] = decision["text"]
            state.edited.append(segment)
            state.warnings += decision.get("warnings", [])
        elif segment in row["translation"]:
            state.texts[segment] = row["translation"][segment]
            if decision is not None:
                state.reviewed.append(segment)
    complete = len(state.texts) == len(row["source"])
    all_decided = len(decisions) == len(row["source"])
    if row["status"] == "review" and not all_decided:
        state.status = "unverified" if keep_unverified and complete else "pending"
    elif state.edited:
        state.status = "edited"
    elif state.reviewed:
        state.status = "reviewed"
    return state


def build_outputs(run_dir: Path) -> dict:
    """translated.jsonl and manifest.json from the ledger and the reviews; unchanged files are not rewritten."""
    run = load_run(run_dir)
    reviews = load_reviews(run_dir)
    keep_unverified = bool(run.get("keep_unverified"))
    lines: dict[str, list[str]] = {OUTPUT: [], UNVERIFIED: []}
    statuses: Counter = Counter()
    stale = 0
    for row in load_ledger(run_dir):
        state = item_state(row, reviews, keep_unverified)
        statuses[state.status] += 1
        stale += state.stale
        if state.status not in ("machine", "reviewed", "edited", "unverified"):
            continue
        item = PARSE_KIND[row["kind"]](row["item"]).with_segments(state.texts, "ar")
        out = item.to_row()
        out["id"] = f"{row['id']}-ar"
        provenance = {
            "stage": "translate",
            "source_id": row["id"],
            "source": row["where"],
            "source_sha256": sha256_text(json.dumps(row["source"], ensure_ascii=False, sort_keys=True)),
            "model": run["endpoint"]["model"],
            "status": state.status,
            "rounds": row["rounds"],
            "scores": {"chrf": (row["scores"] or {}).get("chrf")},
        }
        if row["scores"]:
            ratios = row["scores"]["length_ratio"].values()
            provenance["scores"]["length_ratio"] = [min(ratios), max(ratios)]
        if state.status == "unverified" or (row["status"] == "review" and row["reasons"]):
            provenance["qa_reasons"] = row["reasons"]
        if state.reviewed:
            provenance["reviewed_segments"] = state.reviewed
        if state.edited:
            provenance["edited_segments"] = state.edited
        if state.warnings:
            provenance["edit_warnings"] = state.warnings
        out["provenance"] = provenance
        lines[UNVERIFIED if state.status == "unverified" else OUTPUT].append(json_line(out))
    outputs = {}
    for name, rows in lines.items():
        path = run_dir / name
        if name == UNVERIFIED and not keep_unverified:
            path.unlink(missing_ok=True)  # left by an earlier --keep-unverified run
            continue
        write_if_changed(path, "".join(rows))
        outputs[name] = {"rows": len(rows), "sha256": sha256_file(path)}
    manifest = {
        "stage": "translate",
        "input": run["input"],
        "input_sha256": run["input_sha256"],
        "format": run["format"],
        "endpoint": run["endpoint"],
        "keep_unverified": keep_unverified,
        "outputs": outputs,
        "items": dict(sorted(statuses.items())),
        "input_rejects": run["counts"]["rejected"],
        "stale_reviews": stale,
        "reviews": len(reviews),
        "usage": run["usage"],
        "translation": run["translation"],
    }
    write_if_changed(run_dir / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return manifest


def _segment_reasons(reasons: list[str], segment: str, segments: list[str]) -> str:
    own = [r for r in reasons if r.startswith(f"{segment}:")]
    general = [r for r in reasons if not any(r.startswith(f"{s}:") for s in segments)]
    return " | ".join(own + general)


def _segment_checks(failures: list[dict], segment: str) -> str:
    """The checks that failed on this segment or on the whole item, in the order they ran."""
    names = [f["check"] for f in failures if f.get("segment") in (segment, None)]
    return ", ".join(dict.fromkeys(names))


def queue_rows(run_dir: Path, include_all: bool = False) -> list[dict]:
    load_run(run_dir)  # a clear error when run_dir is not a run folder
    reviews = load_reviews(run_dir)
    rows = []
    for row in load_ledger(run_dir):
        state = item_state(row, reviews, keep_unverified=False)
        if state.status == "pending" or (include_all and state.status in ("machine", "reviewed", "edited")):
            segments = list(row["source"])
            scores = row["scores"] or {}
            for segment in segments:
                machine = row["translation"].get(segment, "")
                review = reviews.get((row["id"], segment))
                verdict, edit = "", ""
                if review is not None and review["source_sha"] == row["source_sha"][segment]:
                    verdict = review["decision"] if review["decision"] != "edit" else ""
                    edit = review.get("text", "") if review["decision"] == "edit" else ""
                rows.append(
                    {
                        "id": row["id"],
                        "segment": segment,
                        "status": row["status"],
                        "source": row["source"][segment],
                        "machine_translation": machine,
                        "back_translation": row["back_translation"].get(segment, ""),
                        "chrf": (scores.get("segment_chrf") or {}).get(segment, ""),
                        "item_chrf": scores.get("chrf", ""),
                        "length_ratio": (scores.get("length_ratio") or {}).get(segment, ""),
                        "reason": _segment_reasons(row["reasons"], segment, segments),
                        "checks": _segment_checks(row.get("failures", []), segment),
                        "source_sha": row["source_sha"][segment],
                        "machine_sha": _short_sha(machine),
                        "verdict": verdict,
                        "edited_translation": edit,
                    }
                )
    return rows


def export_queue(run_dir: Path, include_all: bool = False, prefix: str = "queue") -> tuple[Path, Path, int]:
    """review/<prefix>.csv (UTF-8 with BOM, so spreadsheets show Arabic) and review/<prefix>.jsonl."""
    rows = queue_rows(run_dir, include_all)
    csv_path = run_dir / "review" / f"{prefix}.csv"
    jsonl_path = run_dir / "review" / f"{prefix}.jsonl"
    frame = pd.DataFrame(rows, columns=REVIEW_COLUMNS)
    write_if_changed(csv_path, "\ufeff" + frame.to_csv(index=False, lineterminator="\n"))
    write_if_changed(jsonl_path, "".join(json_line(r) for r in rows))
    return csv_path, jsonl_path, len(rows)


def _read_reviewed(path: Path) -> list[tuple[str, dict]]:
    """(where, row) for each row of a reviewed CSV (row numbers as a spreadsheet shows them) or JSON lines file."""
    if not path.exists():
        raise ReviewError(f"{path}: file not found")
    if path.suffix == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise ReviewError(f"{path}: not a readable CSV file ({err})") from None
        missing = [
            c
            for c in ("id", "segment", "source_sha", "machine_sha", "verdict", "edited_translation")
            if c not in frame.columns
        ]
        if missing:
            raise ReviewError(f"{path}: column {missing[0]!r} is missing (export a fresh queue with review-export)")
        return [(f"{path}:row {i + 2}", row) for i, row in enumerate(frame.to_dict(orient="records"))]
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReviewError(f"{path}:line {number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ReviewError(f"{path}:line {number}: expected a JSON object")
            rows.append((f"{path}:line {number}", {k: "" if v is None else str(v) for k, v in row.items()}))
        return rows
    raise ReviewError(f"{path}: expected a .csv or .jsonl file exported by review-export")


def edit_warnings(source: str, edit: str, segment: str) -> list[str]:
    """Checks an edit does not need to pass (the reviewer wins) but that are worth a second look."""
    warnings = []
    missing, extra = number_differences(source, edit)  # as the numbers check compares them
    if missing or extra:
        warnings.append(f"{segment}: the edit's numbers differ from the source's")
    if PLACEHOLDER.search(edit):
        warnings.append(f"{segment}: the edit contains a placeholder ⟦n⟧; write the real text")
    return warnings


@dataclass
class ImportReport:
    changed: int = 0
    unchanged: int = 0
    blank: int = 0
    warnings: list[str] = field(default_factory=list)


def import_reviews(run_dir: Path, files: list[Path]) -> ImportReport:
    """Merge reviewed files into reviews.jsonl, then rebuild the outputs. All or nothing."""
    ledger = {row["id"]: row for row in load_ledger(run_dir)}
    reviews = load_reviews(run_dir)
    updated = dict(reviews)
    errors: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    report = ImportReport()
    for path in files:
        for where, row in _read_reviewed(Path(path)):
            item_id, segment = row.get("id", "").strip(), row.get("segment", "").strip()
            verdict = row.get("verdict", "").strip().lower()
            edit = row.get("edited_translation", "").strip()
            if item_id not in ledger:
                errors.append(f"{where}: unknown id {item_id!r} (not in this run's ledger)")
                continue
            ledger_row = ledger[item_id]
            if segment not in ledger_row["source"]:
                errors.append(f"{where}: item {item_id!r} has no segment {segment!r}")
                continue
            if (item_id, segment) in seen:
                errors.append(f"{where}: {item_id} {segment} was already given at {seen[(item_id, segment)]}")
                continue
            seen[(item_id, segment)] = where
            if verdict not in VERDICTS:
                errors.append(f"{where}: verdict {verdict!r} is not accept, reject or empty")
                continue
            if not verdict and not edit:
                report.blank += 1
                continue
            if row.get("source_sha", "").strip() != ledger_row["source_sha"][segment]:
                errors.append(f"{where}: the source of {item_id} {segment} changed since the export; export again")
                continue
            machine = ledger_row["translation"].get(segment, "")
            if verdict == "reject" and edit:
                errors.append(f"{where}: an edit with verdict reject; keep one of them")
                continue
            if edit:
                decision = {
                    "decision": "edit",
                    "text": edit,
                    "warnings": edit_warnings(ledger_row["source"][segment], edit, segment),
                }
            elif verdict == "accept":
                if not machine:
                    errors.append(
                        f"{where}: accept, but there is no machine translation of {segment}; write edited_translation"
                    )
                    continue
                if row.get("machine_sha", "").strip() != _short_sha(machine):
                    errors.append(
                        f"{where}: the machine translation of {item_id} {segment} changed since the export; export again"
                    )
                    continue
                decision = {"decision": "accept"}
            else:
                decision = {"decision": "reject"}
            record = {
                "id": item_id,
                "segment": segment,
                "source_sha": ledger_row["source_sha"][segment],
                "machine_sha": _short_sha(machine),
                **decision,
                "file": Path(path).name,
            }
            previous = updated.get((item_id, segment))
            if previous is not None and {k: v for k, v in previous.items() if k != "file"} == {
                k: v for k, v in record.items() if k != "file"
            }:
                report.unchanged += 1
                continue
            updated[(item_id, segment)] = record
            report.changed += 1
            report.warnings += [f"{where}: {w}" for w in decision.get("warnings", [])]
    if errors:
        raise ReviewError("\n".join(errors))
    text = "".join(json_line(updated[key]) for key in sorted(updated))
    if updated:
        write_if_changed(run_dir / "reviews.jsonl", text)
    build_outputs(run_dir)
    export_queue(run_dir)
    return report
