"""Build one variant from a mix: convert, filter, mix, split, render, count tokens, write.

1. One parallel pass over the inputs (batches of rows in forked worker processes): decode and
   convert every row, render its chat template, count its tokens, serialise its output line,
   and compute the hashes the selection needs (record id, exact key, LSH band keys,
   contamination). The main process appends the lines to a spool file in the staging folder
   and keeps, per row, only those hashes and a few small codes (about 110 bytes a row); rejects
   go to rejects.jsonl as they come.
2. The selection, in numpy over those columns: decontaminate, drop exact then near duplicates
   (first occurrence wins), apply the source weights and the language ratio, split train/val.
3. A sequential copy of the selected lines from the spool into train.jsonl and val.jsonl.

No text is kept in memory. Every row ends in exactly one state, and the per-source accounting
read = written + rejected + deduplicated + decontaminated + sampled_out is checked against
independent counts (lines spooled, lines written, rejects logged) before the output is
published; a failed build leaves the previous output untouched.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bimedix.audit import FileAudit
from bimedix.chat import system_message
from bimedix.dedup import MinHasher, Words, sequence_hashes, word_hashes
from bimedix.files import sha256_file
from bimedix.formats import SourceFile, decode, iter_rows, mmlu_subject
from data_prep.card import write_card
from data_prep.config import Mix, Settings, display, source_files
from data_prep.decontam import EvalIndex
from data_prep.records import LANGUAGES, TASKS, DataPrepError, Record, Reject, output_row, record_id
from data_prep.sources import SourceContext, get_format
from data_prep.states import (
    DECONTAMINATED,
    DUPLICATE,
    NEAR_DUPLICATE,
    PENDING,
    REJECTED,
    SAMPLED_OUT,
    STATE_NAMES,
    TRAIN,
    VAL,
)
from data_prep.tokens import TokenizerInfo, render

_TASK_SALT = np.array([0x5A17_0001 * (i + 1) for i in range(len(TASKS))], dtype=np.uint64)


@dataclass
class Job:
    """One input file of one source, with everything a worker needs to convert its rows."""

    source_index: int
    source: str
    format: str
    reader: str
    file: SourceFile
    file_number: int  # among the source's files
    convert: Callable[[Any, SourceContext], Record | Reject]
    ctx: SourceContext


@dataclass
class State:
    jobs: list[Job]
    system_message: str | None
    minhasher: MinHasher | None
    eval: EvalIndex | None
    min_coverage: float
    tokenizer: TokenizerInfo


_STATE: State | None = None  # set before the workers fork; they inherit it


# ---------------------------------------------------------------------------------------------
# Pass 1, in the workers

# Every line is serialised with this split; a validation line gets it replaced in pass 3. JSON
# escaping guarantees the first `"split":"train"` of a line is the key itself (the keys before
# it are plain strings, where a quote would be written \").
_TRAIN, _VAL = b'"split":"train"', b'"split":"val"'


@dataclass
class Analysed:
    rows: int
    ok: np.ndarray
    id64: np.ndarray
    exact: np.ndarray
    bands: np.ndarray
    contaminated: np.ndarray
    eval_item: np.ndarray
    language: np.ndarray
    task: np.ndarray
    tokens: np.ndarray
    chars: np.ndarray
    length: np.ndarray  # bytes of the row's line in `lines` (0 for a reject)
    audit_key: np.ndarray  # hash of bimedix.audit.item_keys: (duplicate key, question key) per row
    options: np.ndarray  # option count (MCQA; 0 otherwise)
    lines: bytes  # the output lines of the converted rows, in order
    rejects: list[tuple[int, int, str, str]]  # (row in batch, line, code, reason)


def _key64(key: str) -> int:
    import xxhash

    return xxhash.xxh3_64_intdigest(key.encode("utf-8", "surrogatepass"))


def _finish(record: Record, state: State) -> Record:
    if state.system_message and record.messages[0]["role"] != "system":
        record.messages = [{"role": "system", "content": state.system_message}, *record.messages]
    return record


def _convert(job: Job, payload: Any) -> Record | Reject:
    row = decode(payload)
    return row if isinstance(row, Reject) else job.convert(row, job.ctx)


def analyse(job_index: int, rows: list[tuple[int, Any]]) -> Analysed:
    state = _STATE
    job = state.jobs[job_index]
    n = len(rows)
    records, where, rejects, lines, texts = [], [], [], [], []
    tokenizer = state.tokenizer
    for i, (line, payload) in enumerate(rows):
        result = _convert(job, payload)
        if isinstance(result, Reject):
            rejects.append((i, line, result.code, result.reason))
            continue
        record = _finish(result, state)
        rid = record_id(record.messages)
        row = output_row(
            record, id=rid, source=job.source, format=job.format, split="train", file=job.file.label, line=line
        )
        lines.append(orjson.dumps(row) + b"\n")
        texts.append(render(record.messages, tokenizer.bos, tokenizer.eos))
        records.append(record)
        where.append(i)
    at = np.asarray(where, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    ok[at] = True
    id64 = np.zeros(n, dtype=np.uint64)
    id64[at] = np.fromiter((int(line[7:23], 16) for line in lines), np.uint64, len(lines))  # {"id":"<32 hex>"
    length = np.zeros(n, dtype=np.int64)
    length[at] = np.fromiter(map(len, lines), np.int64, len(lines))
    tokens = np.zeros(n, dtype=np.int64)
    tokens[at] = tokenizer.count(texts)
    chars = np.zeros(n, dtype=np.int64)
    chars[at] = np.fromiter(map(len, texts), np.int64, len(texts))
    task = np.full(n, -1, dtype=np.int8)
    task[at] = [TASKS.index(r.task) for r in records]
    language = np.full(n, -1, dtype=np.int8)
    language[at] = [LANGUAGES.index(r.language) for r in records]
    audit_key = np.zeros((n, 2), dtype=np.uint64)
    audit_key[at] = [[_key64(k) for k in r.audit_keys] for r in records] if records else np.zeros((0, 2))
    options = np.zeros(n, dtype=np.int8)
    options[at] = [len(r.metadata.get("options", ())) if r.task == "mcqa" else 0 for r in records]
    salts = _TASK_SALT[task[at]]
    # one hashing pass over probe_0, extra_0, probe_1, ...: the duplicate key of record i is its
    # probe then its extra text; decontamination looks at the probe words only
    both = word_hashes([text for r in records for text in (r.probe_text, r.extra_text)])
    words = Words(both.hashes, both.owner // 2, both.bounds[::2])
    exact = np.zeros(n, dtype=np.uint64)
    exact[at] = sequence_hashes(words, salts)
    bands_count = state.minhasher.bands if state.minhasher else 0
    bands = np.zeros((n, bands_count), dtype=np.uint64)
    if state.minhasher and records:
        bands[at] = state.minhasher.band_keys(state.minhasher.signatures(words, exact[at]), salts)
    contaminated = np.zeros(n, dtype=bool)
    eval_item = np.full(n, -1, dtype=np.int32)
    if state.eval is not None and records:
        mine = both.owner % 2 == 0
        owner = both.owner[mine] // 2
        probe = Words(both.hashes[mine], owner, np.searchsorted(owner, np.arange(len(records) + 1)))
        for k in np.nonzero(state.eval.index.hits(probe))[0]:
            share, item = state.eval.index.coverage(probe, int(k))
            if share > 0 and share >= state.min_coverage:
                contaminated[at[k]], eval_item[at[k]] = True, item
    return Analysed(
        n, ok, id64, exact, bands, contaminated, eval_item, language, task, tokens, chars, length, audit_key,
        options, b"".join(lines), rejects,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Running batches in order, in parallel, with a bounded number in flight


def _init_worker() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes are the parallelism


class Runner:
    """Batches in forked worker processes, results in submission order, a bounded number in flight.

    concurrent.futures rather than multiprocessing.Pool: `Pool.terminate()` after a failure (a
    `--strict` reject raised while batches were in flight) deadlocked now and then (an idle worker
    holds the task queue's lock while it waits); the executor cancels what has not started, waits
    for the few batches running, and survives a worker that dies."""

    def __init__(self, state: State, workers: int):
        global _STATE
        _STATE = state
        self.pool = None
        if workers > 1:
            context = multiprocessing.get_context("fork")  # the workers inherit _STATE
            self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
        self.max_pending = 2 * workers + 2

    def map(self, fn: Callable, items: Iterator[tuple]) -> Iterator[tuple[tuple, Any]]:
        if self.pool is None:
            for item in items:
                yield item, fn(*item)
            return
        pending: deque = deque()
        for item in items:
            pending.append((item, self.pool.submit(fn, *item)))
            if len(pending) >= self.max_pending:
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()

    def close(self, ok: bool) -> None:
        global _STATE
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=not ok)
        _STATE = None


def _batched(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# ---------------------------------------------------------------------------------------------
# The selection (main process, numpy)


def _mix64(values: np.ndarray, salt: str) -> np.ndarray:
    """splitmix64 of (value XOR salt): a deterministic uniform 64-bit draw per record id."""
    import xxhash

    z = values ^ np.uint64(xxhash.xxh64_intdigest(salt.encode()))
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _first_occurrences(keys: np.ndarray) -> np.ndarray:
    """bool mask: True where the key appears for the first time (in order)."""
    first = np.zeros(len(keys), dtype=bool)
    if len(keys):
        first[np.unique(keys, return_index=True)[1]] = True
    return first


@dataclass
class Columns:
    """What pass 1 keeps of every row, in reading order."""

    job: np.ndarray
    line: np.ndarray
    ok: np.ndarray
    id64: np.ndarray
    exact: np.ndarray
    bands: np.ndarray
    contaminated: np.ndarray
    eval_item: np.ndarray
    language: np.ndarray
    task: np.ndarray
    tokens: np.ndarray
    chars: np.ndarray
    length: np.ndarray
    audit_key: np.ndarray
    options: np.ndarray
    source: np.ndarray


def select(cols: Columns, mix: Mix) -> tuple[np.ndarray, np.ndarray, dict]:
    """(state per row, copies per row, notes) from the pass-1 columns: precedence is
    rejected > decontaminated > exact duplicate > near duplicate > sampled out > train/val."""
    n = len(cols.ok)
    status = np.full(n, PENDING, dtype=np.int8)
    status[~cols.ok] = REJECTED
    status[cols.ok & cols.contaminated] = DECONTAMINATED

    alive = np.nonzero(status == PENDING)[0]
    status[alive[~_first_occurrences(cols.exact[alive])]] = DUPLICATE
    alive = np.nonzero(status == PENDING)[0]
    near = np.zeros(len(alive), dtype=bool)
    for band in range(cols.bands.shape[1]):
        near |= ~_first_occurrences(cols.bands[alive, band])
    status[alive[near]] = NEAR_DUPLICATE

    draw = _mix64(cols.id64, f"sample:{mix.seed}")
    copies = np.zeros(n, dtype=np.int64)
    for s, spec in enumerate(mix.sources):
        mine = np.nonzero((status == PENDING) & (cols.source == s))[0]
        order = mine[np.argsort(draw[mine], kind="stable")]
        whole = int(np.floor(spec.weight))
        extra = round((spec.weight - whole) * len(mine))
        copies[order] = whole
        copies[order[:extra]] += 1
        status[order[copies[order] == 0]] = SAMPLED_OUT

    notes: dict[str, Any] = {}
    if mix.language_ratio:
        effective = {
            lang: int(copies[(status == PENDING) & (cols.language == LANGUAGES.index(lang))].sum())
            for lang in mix.language_ratio
        }
        for lang, count in effective.items():
            if count == 0:
                raise DataPrepError(f"{display(mix.path)}: language_ratio wants {lang} but no {lang} records are left")
        scale = min(effective[lang] / share for lang, share in mix.language_ratio.items())
        targets = {lang: int(np.floor(scale * share + 1e-9)) for lang, share in mix.language_ratio.items()}
        for lang, target in targets.items():
            mine = np.nonzero((status == PENDING) & (cols.language == LANGUAGES.index(lang)))[0]
            order = mine[np.argsort(draw[mine], kind="stable")]
            kept = np.cumsum(copies[order]) <= target
            status[order[~kept]] = SAMPLED_OUT
        notes["language_targets"] = targets

    split_draw = _mix64(cols.id64, f"split:{mix.seed}")
    for lang in range(len(LANGUAGES)):
        mine = np.nonzero((status == PENDING) & (cols.language == lang))[0]
        order = mine[np.argsort(split_draw[mine], kind="stable")]
        n_val = round(mix.val_fraction * len(order))
        status[order[:n_val]] = VAL
        status[order[n_val:]] = TRAIN
    copies[status == VAL] = 1  # a validation record is never repeated (nor also in train)
    copies[(status != TRAIN) & (status != VAL)] = 0
    if (status == PENDING).any():
        raise AssertionError("a row was left without a state")
    return status, copies, notes


# ---------------------------------------------------------------------------------------------
# The build


@dataclass
class Built:
    variant: str
    directory: Path
    manifest: dict
    table: list[dict] = field(default_factory=list)  # per-source counts


def _plan(mix: Mix, settings: Settings) -> tuple[list[Job], list[dict]]:
    jobs, sources = [], []
    for s, spec in enumerate(mix.sources):
        fmt = get_format(spec.format)
        files = source_files(spec, mix)
        declared = {name: getattr(spec, name) for name in fmt.params if getattr(spec, name) is not None}
        params = dict(declared)
        if fmt.layout.probe is not None:
            declared |= {"cop_base_from": "set in the mix", "cop_base_hint": "set cop_base: 0 or 1 for this source in the mix"}  # fmt: skip
            rows = (decode(p) for f in files for _, p in iter_rows(fmt.reader, f))
            params = fmt.probe(rows, declared, ", ".join(f.label for f in files))
        for number, f in enumerate(files):
            subject = spec.subject
            if subject is None and spec.format == "mmlu_csv" and f.path is not None:
                subject = mmlu_subject(f.path)
            ctx = SourceContext(
                source=spec.name,
                language=spec.language,
                subject=subject,
                seed=mix.seed,
                explanations=spec.explanations,
                min_arabic_share=settings.language.min_arabic_share,
                params=params,
            )
            jobs.append(Job(s, spec.name, spec.format, fmt.reader, f, number, fmt.convert, ctx))
        sources.append(
            {
                "name": spec.name,
                "format": spec.format,
                "weight": spec.weight,
                "language": spec.language,
                "params": params,
                "files": [
                    {"file": f.label, "sha256": sha256_file(f.path) if f.path else None, "hub": f.hub} for f in files
                ],
            }
        )
    return jobs, sources


def _rows(jobs: list[Job], batch_rows: int, hub_digests: dict[int, Any]) -> Iterator[tuple[int, list]]:
    for j, job in enumerate(jobs):
        rows = iter_rows(job.reader, job.file)
        if job.file.hub is not None:
            digest = hub_digests.setdefault(j, hashlib.sha256())
            rows = _digesting(rows, digest)
        for batch in _batched(rows, batch_rows):
            yield j, batch


def _digesting(rows, digest):
    for line, row in rows:
        digest.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str))
        yield line, row


def _workers(requested: int | None, settings: Settings) -> int:
    value = requested if requested is not None else settings.workers
    return value if value > 0 else (os.cpu_count() or 1)


def build_variant(
    mix: Mix,
    settings: Settings,
    *,
    out_dir: Path,
    tokenizer: TokenizerInfo,
    eval_index: EvalIndex | None,
    strict: bool = False,
    workers: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Built:
    jobs, sources = _plan(mix, settings)
    dedup = settings.dedup
    state = State(
        jobs=jobs,
        system_message=system_message() if mix.system_message else None,
        minhasher=MinHasher(dedup.num_perm, dedup.bands, dedup.shingle) if dedup.near else None,
        eval=eval_index,
        min_coverage=settings.decontamination.min_coverage,
        tokenizer=tokenizer,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{mix.name}.building-", dir=out_dir))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published folder should not be
    n_workers = _workers(workers, settings)
    runner = Runner(state, n_workers)
    ok = False
    try:
        # ---- pass 1: convert, render, count, hash; spool the lines
        progress(f"{mix.name}: reading {len(jobs)} file(s) of {len(mix.sources)} source(s), {n_workers} worker(s)")
        parts: dict[str, list] = {name: [] for name in Columns.__dataclass_fields__}
        reject_counts: list[Counter] = [Counter() for _ in mix.sources]
        audits = [FileAudit(job.file.label) for job in jobs]
        hub_digests: dict[int, Any] = {}
        spooled = 0
        with open(staging / "rejects.jsonl", "wb") as rejects_out, open(staging / _SPOOL, "wb") as spool:
            for (j, batch), result in runner.map(analyse, _rows(jobs, settings.batch_rows, hub_digests)):
                job = jobs[j]
                for _, line, code, reason in result.rejects:
                    if strict:
                        raise DataPrepError(
                            f"{job.file.label}:{line}: {reason} (--strict stops at the first rejected row)"
                        )
                    reject_counts[job.source_index][code] += 1
                    entry = {"source": job.source, "file": job.file.label, "line": line, "code": code, "reason": reason}
                    rejects_out.write(orjson.dumps(entry) + b"\n")
                _audit(audits[j], batch, result)
                spool.write(result.lines)
                spooled += result.lines.count(b"\n")
                parts["job"].append(np.full(result.rows, j, dtype=np.int32))
                parts["source"].append(np.full(result.rows, job.source_index, dtype=np.int32))
                parts["line"].append(np.fromiter((line for line, _ in batch), np.int64, len(batch)))
                for name in Columns.__dataclass_fields__:
                    if name not in ("job", "source", "line"):
                        parts[name].append(getattr(result, name))
        ok = True
    finally:
        runner.close(ok)
        if not ok:
            shutil.rmtree(staging, ignore_errors=True)

    try:
        bands_width = state.minhasher.bands if state.minhasher else 0
        empty = {"bands": np.zeros((0, bands_width), dtype=np.uint64), "audit_key": np.zeros((0, 2), dtype=np.uint64)}
        cols = Columns(
            **{
                name: np.concatenate(chunks) if chunks else empty.get(name, np.zeros(0, dtype=np.int64))
                for name, chunks in parts.items()
            }
        )
        if spooled != int(cols.ok.sum()):
            raise DataPrepError(f"accounting: {int(cols.ok.sum())} rows converted but {spooled} lines spooled")
        for j, job in enumerate(jobs):
            entry = sources[job.source_index]["files"][job.file_number]
            if job.file.path is not None and sha256_file(job.file.path) != entry["sha256"]:
                raise DataPrepError(f"{job.file.label}: the file changed during the build; run it again")
            if job.file.hub is not None:
                entry["sha256"] = hub_digests[j].hexdigest()
                entry["sha256_of"] = "the rows as streamed (JSON with sorted keys)"
            entry["audit"] = audits[j].to_dict()
            for finding in audits[j].lines():
                progress(f"{mix.name}: audit: {finding}")

        # ---- the selection
        status, copies, notes = select(cols, mix)

        # ---- pass 2: copy the selected lines out of the spool
        progress(
            f"{mix.name}: writing {int((status == TRAIN).sum())} train and {int((status == VAL).sum())} val records"
        )
        written_lines, digests = _write_splits(staging, cols.length, status, copies)
        (staging / _SPOOL).unlink()
        accounting = _account(mix, cols, status, copies, reject_counts, written_lines, staging)
        manifest = write_card(
            staging,
            mix=mix,
            settings=settings,
            sources=sources,
            accounting=accounting,
            cols=cols,
            status=status,
            copies=copies,
            tokens=cols.tokens,
            chars=cols.chars,
            notes=notes,
            tokenizer=tokenizer,
            eval_index=eval_index,
            digests=digests,
            written_lines=written_lines,
        )
        final = out_dir / mix.name
        _publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Built(mix.name, final, manifest, accounting)


def _audit(audit: FileAudit, batch: list, result: Analysed) -> None:
    """Feed one batch to its file's audit, in row order (the rows' keys were hashed in the worker)."""
    rejected = {i: (code, reason) for i, _, code, reason in result.rejects}
    keys, options = result.audit_key.tolist(), result.options.tolist()
    for i, (line, _) in enumerate(batch):
        if i in rejected:
            audit.reject(line, *rejected[i])
        else:
            audit.observe(line, keys[i][0], keys[i][1], options[i])


_SPOOL = "spool.jsonl"
_CHUNK = 1 << 24  # bytes of spool read at a time


def _write_splits(staging: Path, length: np.ndarray, status: np.ndarray, copies: np.ndarray):
    """Copy the chosen lines out of the spool (in reading order) into train.jsonl and val.jsonl."""
    written = {"train": 0, "val": 0}
    digests = {"train": hashlib.sha256(), "val": hashlib.sha256()}
    rows = np.flatnonzero(length)  # the converted rows, in the spool's order
    ends = np.cumsum(length[rows])
    with (
        open(staging / _SPOOL, "rb") as spool,
        open(staging / "train.jsonl", "wb") as train_out,
        open(staging / "val.jsonl", "wb") as val_out,
    ):
        first = 0
        while first < len(rows):
            last = max(first + 1, int(np.searchsorted(ends, ends[first] - length[rows[first]] + _CHUNK, side="right")))
            block = spool.read(int(ends[last - 1] - (ends[first - 1] if first else 0)))
            train, val, offset = [], [], 0
            for row in rows[first:last]:
                size = int(length[row])
                state = status[row]
                if state == TRAIN:
                    train.append(block[offset : offset + size] * int(copies[row]))
                    written["train"] += int(copies[row])
                elif state == VAL:
                    val.append(block[offset : offset + size].replace(_TRAIN, _VAL, 1))
                    written["val"] += 1
                offset += size
            for name, out, chunks in (("train", train_out, train), ("val", val_out, val)):
                data = b"".join(chunks)
                out.write(data)
                digests[name].update(data)
            first = last
    return written, {name: digest.hexdigest() for name, digest in digests.items()}


def _account(mix, cols, status, copies, reject_counts, written_lines, staging) -> list[dict]:
    """Per-source counts, and the checks that make a lost row an error."""
    table = []
    for s, spec in enumerate(mix.sources):
        mine = cols.source == s
        states = Counter(status[mine].tolist())
        counts = {"read": int(mine.sum())}
        counts |= {STATE_NAMES[k]: int(states.get(k, 0)) for k in STATE_NAMES}
        counts["written"] = counts["train"] + counts["val"]
        counts["deduplicated"] = counts["duplicates_exact"] + counts["duplicates_near"]
        counts["train_lines"] = int(copies[mine & (status == TRAIN)].sum())
        counts["reject_codes"] = dict(sorted(reject_counts[s].items()))
        where = f"accounting, source {spec.name}"
        total = (
            counts["written"]
            + counts["rejected"]
            + counts["deduplicated"]
            + counts["decontaminated"]
            + counts["sampled_out"]
        )
        if total != counts["read"]:
            raise DataPrepError(f"{where}: read {counts['read']} != written + rejected + deduplicated + ... = {total}")
        if sum(reject_counts[s].values()) != counts["rejected"]:
            raise DataPrepError(
                f"{where}: {counts['rejected']} rejected rows but {sum(reject_counts[s].values())} logged"
            )
        table.append({"source": spec.name, **counts})
    expected_train = int(copies[status == TRAIN].sum())
    expected_val = int((status == VAL).sum())
    if (written_lines["train"], written_lines["val"]) != (expected_train, expected_val):
        raise DataPrepError(
            f"accounting: wrote {written_lines} lines, expected train {expected_train}, val {expected_val}"
        )
    for name, expected in (("train.jsonl", expected_train), ("val.jsonl", expected_val)):
        with open(staging / name, "rb") as fh:
            lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
        if lines != expected:
            raise DataPrepError(f"accounting: {name} has {lines} lines, expected {expected}")
    with open(staging / "rejects.jsonl", "rb") as fh:
        logged = sum(1 for _ in fh)
    if logged != sum(row["rejected"] for row in table):
        raise DataPrepError(
            f"accounting: rejects.jsonl has {logged} lines, expected {sum(r['rejected'] for r in table)}"
        )
    return table


def _publish(staging: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
