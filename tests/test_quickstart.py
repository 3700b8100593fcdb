"""The README's quick start is what CI runs (.ci/run: python3 -m bimedix.quickstart run): the
extraction finds exactly its commands, each is a make target, and `run` stops at the first failure."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bimedix import quickstart
from bimedix.paths import ROOT


def test_the_readme_quick_start_is_make_demo_then_make_test():
    commands = quickstart.read()
    assert [c.text for c in commands] == ["make demo", "make test"]
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for command in commands:  # the line numbers point at the README's own lines
        assert lines[command.line - 1].strip().startswith(command.text)


@pytest.mark.parametrize("command", [c.text for c in quickstart.read()])
def test_each_quick_start_command_is_a_make_target_make_accepts(command):
    argv = command.split()
    assert argv[0] == "make" and len(argv) == 2, f"{command}: the quick start holds make targets only"
    dry = subprocess.run(["make", "-n", argv[1]], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"make {argv[1]} " in listed


def test_the_cli_lists_the_commands_with_the_system_python_alone():
    # CI runs it before any environment exists: -S leaves site-packages out, -E ignores PYTHONPATH.
    listed = subprocess.run(
        [sys.executable, "-S", "-E", "-m", "bimedix.quickstart", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.splitlines() == ["make demo", "make test"]


README = """# x

## Requirements

```bash
make never-this   # a block under another heading
```

## Two commands

Some words first.

```bash
make demo   # the demo
  # a comment line
make test FLAG="a b"  # quoted values survive
```

```bash
make not-this-either
```
"""


def test_extraction_takes_the_first_bash_block_under_the_heading_and_drops_comments():
    commands = quickstart.extract(README)
    assert [(c.text, c.line) for c in commands] == [("make demo", 14), ("make test 'FLAG=a b'", 16)]
    assert commands[1].argv == ["make", "test", "FLAG=a b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# x\n\n## Install\n", "README.md: no '## Two commands' heading"),
        ("## Two commands\n\ntext\n\n## Next\n\n```bash\nmake x\n```\n", "README.md:1: no ```bash block under"),
        ("## Two commands\n```bash\nmake x\n", "README.md:2: the ```bash block is not closed"),
        ("## Two commands\n```bash\n# only a comment\n```\n", "README.md:2: the quick-start block holds no command"),
        ("## Two commands\n```bash\nmake 'x\n```\n", "README.md:3: cannot read the command"),
    ],
)
def test_a_broken_quick_start_is_one_line_naming_the_line(text, message):
    with pytest.raises(quickstart.QuickstartError) as caught:
        quickstart.extract(text)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_run_goes_in_order_and_stops_at_the_first_failure(tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    readme = tmp_path / "README.md"
    readme.write_text(
        "## Two commands\n\n```bash\n"
        f"{sys.executable} -c \"open('ran.txt', 'a').write('first ')\"\n"
        f'{sys.executable} -c "import sys; sys.exit(7)"   # fails\n'
        f"{sys.executable} -c \"open('ran.txt', 'a').write('never')\"\n"
        "```\n"
    )
    assert quickstart.main(["run", "--readme", str(readme)]) == 7
    assert marker.read_text() == "first "  # ran in the README's folder, and not past the failure
    out = capsys.readouterr().out
    assert "failed with status 7" in out and "(README.md:5)" in out


def test_run_reports_every_command_when_all_pass(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"## Two commands\n```bash\n{sys.executable} -c pass\ntrue\n```\n")
    assert quickstart.main(["run", "--readme", str(readme)]) == 0
    assert "quick start: every command passed" in capsys.readouterr().out
