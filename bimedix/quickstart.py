"""Run the README's quick start exactly as a newcomer would: the commands of its first ```bash block
under "## Two commands", in order, from the repository root.

    python3 -m bimedix.quickstart list     # print the commands
    python3 -m bimedix.quickstart run      # run them; stop at the first that fails, with its status

Standard library only: CI runs it on a fresh clone, before any environment exists (.ci/run).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HEADING = "## Two commands"
FENCE = "```bash"


class QuickstartError(ValueError):
    """The README's quick start cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Command:
    text: str  # the command without its comment, as shlex reads it
    line: int  # 1-based line in the README

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)


def extract(text: str, source: str = "README.md") -> list[Command]:
    """The commands of the first ```bash block after the HEADING line, before the next ## heading."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == HEADING)
    except StopIteration:
        raise QuickstartError(f"{source}: no '{HEADING}' heading") from None
    fence = None
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped.startswith("## "):
            break
        if stripped == FENCE:
            fence = i
            break
    if fence is None:
        raise QuickstartError(f"{source}:{start + 1}: no {FENCE} block under '{HEADING}'")
    commands = []
    for i in range(fence + 1, len(lines)):
        raw = lines[i].strip()
        if raw.startswith("```"):
            break
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as err:
            raise QuickstartError(f"{source}:{i + 1}: cannot read the command ({err})") from None
        if words:
            commands.append(Command(shlex.join(words), i + 1))
    else:
        raise QuickstartError(f"{source}:{fence + 1}: the {FENCE} block is not closed")
    if not commands:
        raise QuickstartError(f"{source}:{fence + 1}: the quick-start block holds no command")
    return commands


def read(readme: Path = README) -> list[Command]:
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as err:
        raise QuickstartError(f"{readme}: cannot read ({err.strerror})") from None
    return extract(text, readme.name)


def run(commands: list[Command], cwd: Path = ROOT, source: str = "README.md") -> int:
    """Run each command in order from cwd; the first failure ends the run with its exit status."""
    timings = []
    for command in commands:
        print(f"\n$ {command.text}    ({source}:{command.line})", flush=True)
        start = time.monotonic()
        try:
            code = subprocess.run(command.argv, cwd=cwd).returncode
        except OSError as err:
            print(f"error: quick-start command `{command.text}` ({source}:{command.line}) did not start: {err}")
            return 127
        seconds = time.monotonic() - start
        timings.append((command.text, seconds))
        if code != 0:
            print(
                f"error: quick-start command `{command.text}` ({source}:{command.line}) failed with status {code} "
                f"after {seconds:.0f} s",
                flush=True,
            )
            return code
    print("\nquick start: every command passed", flush=True)
    for text, seconds in timings:
        print(f"  {seconds:8.1f} s  {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bimedix.quickstart", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "run"])
    parser.add_argument("--readme", type=Path, default=README, help="the README to read (default: README.md)")
    args = parser.parse_args(argv)
    try:
        commands = read(args.readme)
    except QuickstartError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.action == "list":
        for command in commands:
            print(command.text)
        return 0
    return run(commands, cwd=args.readme.resolve().parent, source=args.readme.name)


if __name__ == "__main__":
    sys.exit(main())
