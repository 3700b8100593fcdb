"""Every real benchmark file through `data_prep convert` and `eval_tasks check-data`: same items, same gold letters.

    python benchmarks/bench_formats.py [--realdata ../shared/realdata] [--out build/bench-formats.json]

Reads the public benchmark files in their original formats from REALDATA (default ../shared/realdata
beside the repository, or ../../shared/realdata for a worktree; override with --realdata or
$BIMEDIX_REALDATA). It never copies their rows: the
converted records, the scored items and an index for eval_tasks are written to a temporary folder.

For each file it runs both public commands as a user would, with the audit's limits lifted
(--max-rejected 1 --max-repeated 1, so a file the audit refuses is still compared, and its findings
are reported), and compares, file by file and line by line:
  - data_prep: `python -m data_prep convert --format F FILES --language L --out records.jsonl`
    (the record's provenance line and metadata label -> gold letter);
  - eval_tasks: `python -m eval_tasks check-data --data index.yaml --items items.jsonl`
    (each scored item's file, line and gold letter).
Files that mix benchmarks (Apollo's dev_en.json) are scored through `where: {source: ...}` selections,
one task each, and compared per selection. Exit status 1 when any count or letter differs.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
LIFTED = ["--max-rejected", "1", "--max-repeated", "1"]
MMLU_SUBJECTS = ("clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                 "professional_medicine", "anatomy")  # fmt: skip


def plan(realdata: Path) -> list[dict]:
    """The real files, each with its format, language, and the eval task(s) that score it."""
    files = []

    def add(path: str, fmt: str, language: str, task: str, where: dict | None = None):
        full = realdata / path
        if full.is_file():
            files.append({"path": path, "format": fmt, "language": language, "task": task, "where": where})

    add("medqa_us/test_4options.jsonl", "medqa", "en", "bimedix_en_medqa")
    add("medmcqa/validation_hub_copy.jsonl", "medmcqa", "en", "bimedix_en_medmcqa")
    add("pubmedqa/ori_pqal.json", "pubmedqa", "en", "bimedix_en_pubmedqa")
    for language in ("en", "ar"):
        for split in ("dev", "val", "test"):
            for subject in MMLU_SUBJECTS:
                add(
                    f"mmlu_{language}/{split}/{subject}_{split}.csv",
                    "mmlu_csv",
                    language,
                    f"bimedix_{language}_mmlu_{subject}",
                )
    for source, task in (("medmcqa", "bimedix_en_medmcqa"), ("medqa-usmle", "bimedix_en_medqa"),
                         ("mmlu-medical", "bimedix_en_mmlu_anatomy"), ("pubmedqa", "bimedix_en_pubmedqa")):  # fmt: skip
        add("apollo_xmedbench/dev_en.json", "mcq_json", "en", task, {"source": source})
    add("apollo_xmedbench/dev_ar.json", "mcq_json", "ar", "bimedix_ar_mmlu_anatomy")
    add("apollo_xmedbench/test_ar.json", "mcq_json", "ar", "bimedix_ar_mmlu_anatomy")
    return files


def run(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **OFFLINE}, capture_output=True, text=True)
    return out, time.perf_counter() - start


def convert_all(files: list[dict], realdata: Path, work: Path) -> tuple[dict, float, list[str]]:
    """data_prep convert, one call per (format, language): {file: {line: letter}} and the audit lines."""
    groups = collections.defaultdict(list)
    for f in files:
        if f["path"] not in groups[(f["format"], f["language"])]:
            groups[(f["format"], f["language"])].append(f["path"])
    letters: dict[str, dict[int, str]] = collections.defaultdict(dict)
    seconds, audit, read = 0.0, [], {}
    for (fmt, language), paths in groups.items():
        out_file = work / f"records_{fmt}_{language}.jsonl"
        cmd = [sys.executable, "-m", "data_prep", "convert", "--format", fmt, "--language", language, "--out",
               str(out_file), *LIFTED, *(str(realdata / p) for p in paths)]  # fmt: skip
        out, took = run(cmd)
        seconds += took
        if out.returncode != 0:
            raise SystemExit(f"data_prep convert failed: {out.stderr.strip()}")
        audit += [line.strip() for line in out.stdout.splitlines() if line.strip().startswith("audit:")]
        for line in out.stdout.splitlines():  # "FILE: read N, written M {...}, rejected K"
            if ": read " in line and not line.startswith(("total:", " ")):
                file, counts = line.split(": read ", 1)
                read[str(Path(file).resolve())] = int(counts.split(",")[0])
        for line in out_file.read_bytes().split(b"\n")[:-1]:
            record = json.loads(line)
            provenance, meta = record["provenance"], json.loads(record["metadata"])
            file = str(Path(provenance["file"]).resolve())
            letters[file][provenance["line"]] = "ABCDE"[meta["label"]]
    return letters, seconds, audit, read


def check_all(files: list[dict], realdata: Path, work: Path) -> tuple[dict, float, str]:
    """eval_tasks check-data over an index of every file: {(file, where): {line: letter}}."""
    import yaml

    entries = []
    for f in files:
        entry = {"task": f["task"], "language": f["language"], "path": f["path"], "format": f["format"]}
        if f["where"]:
            entry["where"] = f["where"]
        entries.append(entry)
    index = work / "index.yaml"
    index.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    items = work / "items.jsonl"
    cmd = [sys.executable, "-m", "eval_tasks", "check-data", "--data", str(index), "--data-root", str(realdata),
           "--items", str(items), "--show-rejects", "0", *LIFTED]  # fmt: skip
    out, took = run(cmd)
    if out.returncode != 0:
        raise SystemExit(f"eval_tasks check-data failed: {out.stderr.strip()}")
    letters: dict[tuple, dict[int, str]] = collections.defaultdict(dict)
    for line in items.read_bytes().split(b"\n")[:-1]:
        row = json.loads(line)
        letters[(str(Path(row["file"]).resolve()), row["task"])][row["line"]] = row["letter"]
    summary = next(line for line in out.stdout.splitlines() if " tasks from " in line)
    return letters, took, summary


def compare(files, realdata, converted, scored, apollo_sources, read) -> list[dict]:
    rows = []
    for f in files:
        path = str((realdata / f["path"]).resolve())
        mine = converted.get(path, {})
        if f["where"]:  # keep the convert side's lines of that selection
            mine = {line: letter for line, letter in mine.items() if apollo_sources.get(line) == f["where"]["source"]}
        theirs = scored.get((path, f["task"]), {})
        same = sum(1 for line, letter in mine.items() if theirs.get(line) == letter)
        label = f["path"] + (f" [source: {f['where']['source']}]" if f["where"] else "")
        rows.append({"file": label, "task": f["task"], "rows": None if f["where"] else read.get(path),
                     "convert": len(mine), "check_data": len(theirs), "same_letter": same,
                     "agree": len(mine) == len(theirs) == same})  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    candidates = [
        ROOT.parent / "shared" / "realdata",
        ROOT.parent.parent / "shared" / "realdata",
    ]  # a clone, a worktree
    found = next((c for c in candidates if c.is_dir()), candidates[0])
    default = os.environ.get("BIMEDIX_REALDATA") or str(found)
    parser.add_argument("--realdata", type=Path, default=Path(default), help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench-formats.json")
    args = parser.parse_args()
    realdata = args.realdata.resolve()
    files = plan(realdata)
    if not files:
        raise SystemExit(f"{realdata}: none of the real benchmark files is there (see the docstring)")
    print(f"reading {len({f['path'] for f in files})} real files from {realdata}", flush=True)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bimedix-bench-formats-") as tmp:
        work = Path(tmp)
        converted, convert_s, audit, read = convert_all(files, realdata, work)
        scored, check_s, summary = check_all(files, realdata, work)
    apollo = realdata / "apollo_xmedbench" / "dev_en.json"
    apollo_sources = {}
    if apollo.is_file():
        from bimedix import formats

        apollo_sources = {line: row.get("source") for line, row in formats.read_rows(apollo, "mcq_json")}
    rows = compare(files, realdata, converted, scored, apollo_sources, read)
    width = max(len(r["file"]) for r in rows)
    print(f"{'file':{width}}  {'task':38} {'rows':>5} {'convert':>7} {'check-data':>10} {'same letter':>11}")
    for r in rows:
        flag = "" if r["agree"] else "  <- DIFFERS"
        shown = "" if r["rows"] is None else r["rows"]
        print(
            f"{r['file']:{width}}  {r['task']:38} {shown:>5} {r['convert']:7} {r['check_data']:10} {r['same_letter']:11}{flag}"
        )
    total = {k: sum(r[k] for r in rows) for k in ("convert", "check_data", "same_letter")}
    agree = all(r["agree"] for r in rows)
    print(f"total: {total['convert']} items converted, {total['check_data']} scored, {total['same_letter']} with the "
          f"same gold letter; {'every file agrees' if agree else 'SOME FILES DIFFER'}")  # fmt: skip
    print(f"data_prep convert: {convert_s:.1f} s; eval_tasks check-data: {check_s:.1f} s ({summary.strip()})")
    print("audit findings (data_prep convert; check-data reports the same per task):")
    for line in audit:
        print(f"  {line}")
    result = {"realdata": str(realdata), "files": rows, "total": total, "agree": agree, "audit": audit,
              "seconds": {"convert": round(convert_s, 1), "check_data": round(check_s, 1)},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load_before,
                          "load_after": os.getloadavg()}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
