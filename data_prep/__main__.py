"""python -m data_prep <command>: build the training sets, convert one source, list the formats.

    python -m data_prep build [--mix data_prep/mixes/bilingual.yaml ...] [--eval-data sample|hub|DIR] [--no-decontaminate]
    python -m data_prep convert --format pubmedqa path/to/ori_pqal.json [--out records.jsonl]
    python -m data_prep formats

Problems with the input (a missing file, an unknown format, a bad mix, a rejected row under
--strict, a file the audit refuses in `convert`) end the command with one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bimedix.paths import DATA_DIR, ROOT
from data_prep.config import MIXES_DIR, SETTINGS_PATH, display, load_mix, load_settings
from data_prep.records import DataPrepError

DEFAULT_MIXES = [MIXES_DIR / f"{name}.yaml" for name in ("bilingual", "arabic", "english")]


@dataclass
class BuildOptions:
    mix: list[Path]
    out: Path | None = None
    tokenizer: str | None = None
    eval_data: str | None = None
    eval_data_root: str | None = None
    decontaminate: bool = True
    strict: bool = False
    workers: int | None = None
    settings: Path = SETTINGS_PATH


@dataclass
class ConvertOptions:
    format: str
    inputs: list[Path]
    out: Path | None = None
    rejects: Path | None = None
    language: str | None = None
    cop_base: int | None = None
    strict: bool = False
    max_rejected: float | None = None
    max_repeated: float | None = None


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return value


def _options(cls, namespace: argparse.Namespace):
    return cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)})


def _root_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def eval_data_setting(option: str | None, setting: str) -> str:
    """--eval-data, else $BIMEDIX_EVAL_DATA, else the settings' eval_data (EVAL_DATA, as `make eval` reads it)."""
    return (option or "").strip() or os.environ.get("BIMEDIX_EVAL_DATA", "").strip() or setting


def cmd_build(o: BuildOptions) -> int:
    from data_prep.build import build_variant, stderr_progress
    from data_prep.decontam import load_eval_index
    from data_prep.tokens import load_tokenizer

    settings = load_settings(o.settings)
    mixes = [load_mix(path) for path in o.mix or DEFAULT_MIXES]
    names = Counter(mix.name for mix in mixes)
    if any(count > 1 for count in names.values()):
        raise DataPrepError(f"two mixes are named {names.most_common(1)[0][0]!r}: they would write the same folder")
    tokenizer_spec = o.tokenizer
    if tokenizer_spec is None and settings.tokenizer is not None:
        tokenizer_spec = (
            str(_root_path(settings.tokenizer)) if _root_path(settings.tokenizer).exists() else settings.tokenizer
        )
    tokenizer = load_tokenizer(tokenizer_spec)
    eval_index = None
    if o.decontaminate:
        eval_data = eval_data_setting(o.eval_data, settings.eval_data)
        eval_index = load_eval_index(eval_data, o.eval_data_root or None, ngram=settings.decontamination.ngram)
        stderr_progress(
            f"decontaminating against the {len(eval_index.tasks)} items EVAL_DATA={eval_index.source} scores "
            f"(sha256 {eval_index.sha256[:16]})"
        )
    else:
        stderr_progress("decontamination is off (--no-decontaminate); the manifest records it")
    out = o.out or (_root_path(settings.out_dir) if settings.out_dir else DATA_DIR / "processed")
    for mix in mixes:
        built = build_variant(
            mix,
            settings,
            out_dir=out,
            tokenizer=tokenizer,
            eval_index=eval_index,
            strict=o.strict,
            workers=o.workers,
            progress=stderr_progress,
        )
        _print_summary(built)
    return 0


def _print_summary(built) -> None:
    from rich.console import Console
    from rich.table import Table

    m = built.manifest
    table = Table(title=f"{built.variant} -> {display(built.directory)}", title_justify="left")
    columns = ["read", "written", "rejected", "duplicates_exact", "duplicates_near", "decontaminated", "sampled_out"]
    table.add_column("source")
    for name in columns:
        table.add_column(name.replace("duplicates_", "dup "), justify="right")
    for row in built.table:
        table.add_row(row["source"], *(str(row[name]) for name in columns))
    table.add_row("total", *(str(sum(row[name] for row in built.table)) for name in columns), style="bold")
    console = Console(width=max(120, Console().width))
    console.print(table)
    c, t, r = m["counts"], m["tokens"], m["ratio"]
    ratio = ""
    if "as_ar_to_en" in r["records"]:
        ratio = f" | ar:en {r['records']['as_ar_to_en']} by records, {r['tokens']['as_ar_to_en']} by tokens"
    console.print(f"train {c['train']}, val {c['val']} | tokens {t['total']:,} ({m['tokenizer']['name']}){ratio}")
    rejected = sum(row["rejected"] for row in built.table)
    if rejected:
        console.print(
            f"{rejected} rejected rows, with file, line and reason: {display(built.directory / 'rejects.jsonl')}"
        )


def cmd_convert(o: ConvertOptions) -> int:
    """Convert files of one format as they are (no mixing or dedup): for checking a source by hand.

    Every file is read and audited by bimedix.formats, as eval_tasks reads it; a later copy of a
    duplicate question is rejected. Exits non-zero (one line) when a file is refused by the audit."""
    import orjson

    from bimedix import formats
    from bimedix.audit import Gate
    from data_prep.records import output_row, record_id
    from data_prep.sources import SourceContext, get_format, record_of

    settings = load_settings()
    gate = Gate(
        settings.audit.max_rejected_share if o.max_rejected is None else o.max_rejected,
        settings.audit.max_repeated_share if o.max_repeated is None else o.max_repeated,
    )
    fmt = get_format(o.format)
    files = [formats.SourceFile(display(p), path=p) for p in o.inputs]
    for f in files:
        f.check()
    declared: dict = {}
    if "cop_base" in fmt.params:
        declared = {"cop_base": o.cop_base, "cop_base_from": "--cop-base", "cop_base_hint": "pass --cop-base 0 or 1"}
    rows = {f.label: formats.read_rows(f.path, fmt.layout, f.label) for f in files}
    params = fmt.probe((r for found in rows.values() for _, r in found), declared, ", ".join(rows))
    if params:
        print(f"{o.format}: {params}", file=sys.stderr)
    total, problems = Counter(), []
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(o.out, "wb")) if o.out else None
        rejects_out = stack.enter_context(open(o.rejects, "wb")) if o.rejects else None
        for f in files:
            subject = formats.mmlu_subject(f.path) if o.format == "mmlu_csv" else None
            ctx = SourceContext(
                source=o.format,
                language=o.language,
                subject=subject,
                params=params,
                min_arabic_share=settings.language.min_arabic_share,
            )
            read = formats.convert_rows(rows[f.label], fmt.layout, ctx.item_context(), label=f.label, params=params)
            if o.strict and read.rejects:
                line, reject = read.rejects[0]
                raise DataPrepError(f"{f.label}:{line}: {reject.reason} (--strict stops at the first rejected row)")
            languages, codes = Counter(item.language for item in read.items), Counter(r.code for _, r in read.rejects)
            for line, reject in read.rejects:
                if rejects_out:
                    entry = {"file": f.label, "line": line, "code": reject.code, "reason": reject.reason}
                    rejects_out.write(orjson.dumps(entry) + b"\n")
            for item in read.items if out else ():
                record = record_of(item, ctx)
                row_out = output_row(record, id=record_id(record.messages), source=o.format, format=o.format,
                                     split="train", file=f.label, line=item.line)  # fmt: skip
                out.write(orjson.dumps(row_out) + b"\n")
            counts = {"read": read.rows, "written": len(read.items), "rejected": len(read.rejects)}
            total.update(counts)
            print(
                f"{f.label}: read {counts['read']}, written {counts['written']} {dict(languages)}, "
                f"rejected {counts['rejected']} {dict(codes) if codes else ''}".rstrip()
            )
            for finding in read.audit.lines():
                print(f"  audit: {finding}")
            problems += [f"{f.label}: {problem}" for problem in gate.problems(read.audit)]
    if len(files) > 1:
        print(f"total: read {total['read']}, written {total['written']}, rejected {total['rejected']}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataPrepError(f"{problems[0]}{more}; fix the file, or raise the limits (--max-rejected / --max-repeated)")
    return 0


def cmd_formats(_: argparse.Namespace) -> int:
    from data_prep.sources import SOURCES

    for fmt in SOURCES.values():
        print(f"{fmt.name:<13} {fmt.reader:<10} {fmt.description}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build variants from mix files into <out>/<variant>/")
    build.add_argument(
        "--mix", type=Path, action="append", default=[], help="a mix file (repeat; default: the three variants)"
    )
    build.add_argument(
        "--out", type=Path, help="output root (default: settings out_dir, else $BIMEDIX_DATA_DIR/processed)"
    )
    build.add_argument(
        "--tokenizer", help="the base model's tokenizer: folder, tokenizer.json or hub id (default: tiny model)"
    )
    build.add_argument(
        "--eval-data",
        help="decontaminate against what `make eval` scores with this EVAL_DATA: sample, hub (local cache only), "
        "or a folder / index file (default: $BIMEDIX_EVAL_DATA, else settings.yaml's eval_data)",
    )
    build.add_argument("--eval-data-root", help="where the index's paths resolve (as EVAL_DATA_ROOT)")
    build.add_argument(
        "--no-decontaminate", "--no-decontam", dest="decontaminate", action="store_false", help="skip decontamination"
    )
    build.add_argument("--strict", action="store_true", help="stop at the first rejected row, naming file:line")
    build.add_argument("--workers", type=int, help="worker processes (default: settings; 0 = one per core)")
    build.add_argument("--settings", type=Path, default=SETTINGS_PATH, help="settings file (default: %(default)s)")
    build.set_defaults(handler=lambda ns: cmd_build(_options(BuildOptions, ns)))

    convert = commands.add_parser("convert", help="convert files of one format as they are, with counts")
    convert.add_argument("--format", required=True, help="a format name (see `formats`)")
    convert.add_argument("inputs", type=Path, nargs="+")
    convert.add_argument("--out", type=Path, help="write the records here (JSON lines)")
    convert.add_argument("--rejects", type=Path, help="write rejected rows here (JSON lines)")
    convert.add_argument("--language", choices=["en", "ar"], help="reject rows written in the other script")
    convert.add_argument("--cop-base", type=int, choices=[0, 1], help="medmcqa: cop counts from 0 or 1")
    convert.add_argument("--strict", action="store_true", help="stop at the first rejected row")
    convert.add_argument(
        "--max-rejected", type=_share, help="fail when a file has more rejected rows than this share (settings: 0.1)"
    )
    convert.add_argument(
        "--max-repeated", type=_share, help="fail when more rows repeat another's question (settings: 0.05)"
    )
    convert.set_defaults(handler=lambda ns: cmd_convert(_options(ConvertOptions, ns)))

    formats = commands.add_parser("formats", help="list the source formats")
    formats.set_defaults(handler=cmd_formats)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except DataPrepError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
