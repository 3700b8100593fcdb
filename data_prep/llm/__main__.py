"""python -m data_prep.llm <translate|synthesize|review-export|review-import> ... (see --help of each)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from bimedix.paths import DATA_DIR
from data_prep.llm.config import ConfigError, Settings, load_endpoint, load_settings
from data_prep.llm.errors import EndpointFatal
from data_prep.llm.records import FORMATS  # the exchange formats, then the original ones (bimedix.formats)

# The heavy imports (openai, pandas, sacrebleu) happen inside the commands, after the cheap checks,
# so a missing endpoint or input is reported at once.

DEFAULT_CACHE = DATA_DIR / "llm" / "cache.sqlite"


def meta(help: str, **argparse_kwargs) -> dict:
    """A field's command-line option: its help text and extra argparse settings."""
    return {"help": help, **argparse_kwargs}


@dataclass
class EndpointOptions:
    endpoint: Path | None = field(
        default=None, metadata=meta("endpoint YAML (default: $BIMEDIX_LLM_ENDPOINT, else the BIMEDIX_LLM_* variables)")
    )
    concurrency: int | None = field(
        default=None, metadata=meta("requests in flight (overrides the endpoint and settings.yaml)")
    )
    rpm: float | None = field(default=None, metadata=meta("requests per minute limit"))
    tpm: float | None = field(default=None, metadata=meta("tokens per minute limit"))
    timeout_s: float | None = field(default=None, metadata=meta("per-request deadline in seconds"))
    settings: Path | None = field(default=None, metadata=meta("settings file (default: data_prep/llm/settings.yaml)"))


@dataclass
class StageOptions(EndpointOptions):
    input: Path = field(default=None, metadata=meta("input file", required=True))
    format: str = field(default="mcq_json", metadata=meta("input format", choices=FORMATS))
    out: Path = field(default=None, metadata=meta("run folder for the outputs", required=True))
    cache: Path = field(default=DEFAULT_CACHE, metadata=meta("SQLite cache of finished calls"))
    limit: int | None = field(default=None, metadata=meta("only the first N input rows"))
    keep_unverified: bool = field(
        default=False,
        metadata=meta(
            "also write items that failed the automatic checks, with status 'unverified' and their reasons (for demos)"
        ),
    )
    no_progress: bool = field(default=False, metadata=meta("no progress bar"))


@dataclass
class ExportOptions:
    run: Path = field(default=None, metadata=meta("translation run folder", required=True))
    all: bool = field(default=False, metadata=meta("every translated item, not only the queue (spot checks)"))
    name: str = field(default="queue", metadata=meta("file name stem under RUN/review/"))


@dataclass
class ImportOptions:
    run: Path = field(default=None, metadata=meta("translation run folder", required=True))
    files: list[Path] = field(default_factory=list, metadata=meta("reviewed .csv or .jsonl files", positional=True))


def add_options(parser: argparse.ArgumentParser, cls) -> None:
    """One argparse option per dataclass field: the dataclass is the single description of a command."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        kind = hints[f.name]
        help_text = meta.pop("help")
        if meta.pop("positional", False):
            parser.add_argument(f.name, type=Path, nargs="+", help=help_text)
            continue
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        inner = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
        default = f.default if f.default is not dataclasses.MISSING else None
        suffix = f" (default: {default})" if default is not None else ""
        parser.add_argument(flag, type=inner[0], default=default, help=help_text + suffix, **meta)


def build(cls, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def _settings(options: EndpointOptions) -> Settings:
    return load_settings(options.settings) if options.settings else load_settings()


def _endpoint(options: EndpointOptions, settings: Settings):
    return load_endpoint(options.endpoint, settings).with_overrides(
        concurrency=options.concurrency, rpm=options.rpm, tpm=options.tpm, timeout_s=options.timeout_s
    )


def cmd_translate(options: StageOptions) -> int:
    settings = _settings(options)
    endpoint = _endpoint(options, settings)
    _check_input(options.input)
    from data_prep.llm.translate import TranslateRun, run_translation

    run = TranslateRun(
        options.input,
        options.format,
        options.out,
        options.cache,
        options.limit,
        options.keep_unverified,
        not options.no_progress,
    )
    manifest = asyncio.run(run_translation(run, settings, endpoint))
    items = manifest["items"]
    print(
        f"translate: {sum(items.values())} items ({', '.join(f'{v} {k}' for k, v in items.items()) or 'none'}), "
        f"{manifest['input_rejects']} input rows rejected (see {options.out / 'rejects.jsonl'})"
    )
    for name, output in manifest["outputs"].items():
        print(f"  wrote {options.out / name} ({output['rows']} rows)")
    print(f"  review queue: {options.out / 'review' / 'queue.csv'} and queue.jsonl ({items.get('pending', 0)} items)")
    print(f"  {_usage_line(manifest['usage'])}")
    if items.get("error"):
        print(
            f"error: {items['error']} items failed with endpoint errors; run again to retry them (finished calls are cached)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_synthesize(options: StageOptions) -> int:
    settings = _settings(options)
    endpoint = _endpoint(options, settings)
    _check_input(options.input)
    from data_prep.llm.synthesize import SynthesizeRun, run_synthesis

    run = SynthesizeRun(
        options.input,
        options.format,
        options.out,
        options.cache,
        options.limit,
        options.keep_unverified,
        not options.no_progress,
    )
    manifest = asyncio.run(run_synthesis(run, settings, endpoint))
    items = manifest["items"]
    print(
        f"synthesize: {items['machine']} chats valid, {items['unverified']} unverified, {items['rejected']} rejected, "
        f"{items['error']} endpoint errors, {items['input_rejects']} input rows rejected"
    )
    for name, output in manifest["outputs"].items():
        print(f"  wrote {options.out / name} ({output['rows']} chats)")
    print(f"  rejects with reasons: {options.out / 'rejects.jsonl'}")
    print(f"  {_usage_line(manifest['usage'])}")
    if items["error"]:
        print(
            f"error: {items['error']} items failed with endpoint errors; run again to retry them (finished calls are cached)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_review_export(options: ExportOptions) -> int:
    from data_prep.llm.review import export_queue

    csv_path, jsonl_path, rows = export_queue(options.run, include_all=options.all, prefix=options.name)
    print(f"review-export: {rows} rows to review in {csv_path} and {jsonl_path}")
    return 0


def cmd_review_import(options: ImportOptions) -> int:
    from data_prep.llm.review import import_reviews

    report = import_reviews(options.run, options.files)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"review-import: {report.changed} decisions recorded, {report.unchanged} already recorded, "
        f"{report.blank} rows not reviewed; outputs rebuilt in {options.run}"
    )
    return 0


def _usage_line(usage: dict) -> str:
    retries = sum(usage["retries"].values())
    return (
        f"{usage['completions_paid']} calls paid, {usage['cache_hits']} from cache, {retries} retries, "
        f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens, "
        f"estimated cost ${usage['estimated_cost_usd']:.4f}"
    )


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: input file not found")


COMMANDS = {
    "translate": (StageOptions, cmd_translate, "English -> Arabic translation with automatic QA and a review queue"),
    "synthesize": (StageOptions, cmd_synthesize, "doctor-patient chats from English MCQ items"),
    "review-export": (ExportOptions, cmd_review_export, "write the review queue as CSV and JSON lines"),
    "review-import": (ImportOptions, cmd_review_import, "import reviewed files and rebuild the outputs"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.llm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (cls, _, help_text) in COMMANDS.items():
        add_options(commands.add_parser(name, help=help_text, description=help_text), cls)
    args = parser.parse_args(argv)
    cls, function, _ = COMMANDS[args.command]
    try:
        return function(build(cls, args))
    except (ConfigError, EndpointFatal, ValueError) as err:  # ReviewError is a ValueError
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished calls are in the cache; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
