"""python -m data_prep <command>: build the training sets, convert one source, list the formats.

    python -m data_prep build [--mix data_prep/mixes/bilingual.yaml ...] [--no-decontaminate]
    python -m data_prep convert --format pubmedqa path/to/ori_pqal.json [--out records.jsonl]
    python -m data_prep formats

Problems with the input (a missing file, an unknown format, a bad mix, a rejected row under
--strict) end the command with one line on stderr and exit status 2.
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
from data_prep.records import DataPrepError, Reject

DEFAULT_MIXES = [MIXES_DIR / f"{name}.yaml" for name in ("bilingual", "arabic", "english")]


@dataclass
class BuildOptions:
    mix: list[Path]
    out: Path | None = None
    tokenizer: str | None = None
    eval_index: Path | None = None
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


def _options(cls, namespace: argparse.Namespace):
    return cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls)})


def _root_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def eval_index_path(option: Path | None, setting: str) -> Path:
    """--eval-index, else $BIMEDIX_EVAL_INDEX, else the settings' eval_index (relative to the root)."""
    if option is not None:
        return option
    if os.environ.get("BIMEDIX_EVAL_INDEX"):
        return _root_path(os.environ["BIMEDIX_EVAL_INDEX"])
    return _root_path(setting)


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
        path = eval_index_path(o.eval_index, settings.eval_index)
        eval_index = load_eval_index(
            path, ngram=settings.decontamination.ngram, min_arabic_share=settings.language.min_arabic_share
        )
        stderr_progress(f"decontaminating against {len(eval_index.tasks)} evaluation items from {display(path)}")
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
    """Convert files of one format as they are (no mixing or dedup): for checking a source by hand."""
    import orjson

    from data_prep.readers import SourceFile, decode, iter_rows
    from data_prep.records import output_row, record_id
    from data_prep.sources import SourceContext, get_format

    settings = load_settings()
    fmt = get_format(o.format)
    files = [SourceFile(display(p), path=p) for p in o.inputs]
    for f in files:
        f.check()
    params = {"cop_base": o.cop_base} if o.cop_base is not None and "cop_base" in fmt.params else {}
    if fmt.probe is not None:
        rows = (decode(p) for f in files for _, p in iter_rows(fmt.reader, f))
        try:
            params = fmt.probe((r for r in rows if not isinstance(r, Reject)), params)
        except DataPrepError as err:
            raise DataPrepError(f"{', '.join(f.label for f in files)}: {err}") from None
        print(f"{o.format}: {params}", file=sys.stderr)
    total = Counter()
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(o.out, "wb")) if o.out else None
        rejects_out = stack.enter_context(open(o.rejects, "wb")) if o.rejects else None
        for f in files:
            subject = None
            if o.format == "mmlu_csv":
                subject = f.path.stem.removesuffix("_test").removesuffix("_dev").removesuffix("_val")
            ctx = SourceContext(
                source=o.format,
                language=o.language,
                subject=subject,
                params=params,
                min_arabic_share=settings.language.min_arabic_share,
            )
            counts, codes, languages = Counter(), Counter(), Counter()
            for line, payload in iter_rows(fmt.reader, f):
                counts["read"] += 1
                row = decode(payload)
                result = row if isinstance(row, Reject) else fmt.convert(row, ctx)
                if isinstance(result, Reject):
                    if o.strict:
                        raise DataPrepError(
                            f"{f.label}:{line}: {result.reason} (--strict stops at the first rejected row)"
                        )
                    counts["rejected"] += 1
                    codes[result.code] += 1
                    if rejects_out:
                        entry = {"file": f.label, "line": line, "code": result.code, "reason": result.reason}
                        rejects_out.write(orjson.dumps(entry) + b"\n")
                    continue
                counts["written"] += 1
                languages[result.language] += 1
                if out:
                    row_out = output_row(
                        result,
                        id=record_id(result.messages),
                        source=o.format,
                        format=o.format,
                        split="train",
                        file=f.label,
                        line=line,
                    )
                    out.write(orjson.dumps(row_out) + b"\n")
            if counts["read"] != counts["written"] + counts["rejected"]:
                raise DataPrepError(f"{f.label}: accounting: {dict(counts)}")
            total.update(counts)
            print(
                f"{f.label}: read {counts['read']}, written {counts['written']} {dict(languages)}, "
                f"rejected {counts['rejected']} {dict(codes) if codes else ''}".rstrip()
            )
    if len(files) > 1:
        print(f"total: read {total['read']}, written {total['written']}, rejected {total['rejected']}")
    return 0


def cmd_formats(_: argparse.Namespace) -> int:
    from data_prep.sources import SOURCES

    for fmt in SOURCES.values():
        print(f"{fmt.name:<11} {fmt.reader:<9} {fmt.description}")
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
        "--eval-index", type=Path, help="eval_tasks' index.yaml (default: $BIMEDIX_EVAL_INDEX or settings)"
    )
    build.add_argument("--no-decontaminate", dest="decontaminate", action="store_false", help="skip decontamination")
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
