"""bimedix.demo's own logic, fast and offline: digests and stamps, reuse, the plan, failures naming
their step and log, and the teacher's state file (dead PIDs, recycled PIDs, stop by process group).

The whole demo is not run here: CI runs it through the README's quick start (bimedix/quickstart.py).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from bimedix import demo
from bimedix.paths import ROOT


def quiet_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, soft_wrap=True), buffer


def tiny_config(tmp_path: Path) -> dict:
    """The shipped config, each step reading its own file and its upstream steps' outputs under tmp_path."""
    config = demo.load_config()
    config["log_dir"] = str(tmp_path / "logs")
    for step in ("setup", "data", "train", "eval", "serve"):
        upstream = [str(tmp_path / f"{need}.out") for need in demo.NEEDS[step]]
        config["steps"][step]["inputs"] = [str(tmp_path / f"{step}.in"), *upstream]
        config["steps"][step]["outputs"] = [str(tmp_path / f"{step}.out")]
        (tmp_path / f"{step}.in").write_text(f"{step} input\n")
    return config


class FakeSteps(demo.Demo):
    """The real run_step / execute machinery; each step's work is a file write (or a failing tool)."""

    fail: str | None = None

    def __post_init__(self):
        super().__post_init__()
        self.calls: list[str] = []

    def _work(self, step: str) -> None:
        self.calls.append(step)
        if step == self.fail:
            self.run([sys.executable, "-c", "import sys; print('the tool said why'); sys.exit(3)"])
        Path(self.section(step)["outputs"][0]).write_text(f"{step} output {len(self.calls)}\n")

    def _teacher_step(self):
        return self._record(demo.StepResult("teacher", "skipped", 0.0))


for _step in ("setup", "data", "train", "eval", "serve"):
    setattr(FakeSteps, f"do_{_step}", lambda self, step=_step: self._work(step))
    setattr(FakeSteps, f"report_{_step}", lambda self: None)


# ------------------------------------------------------------------------------------------ digests
def test_digest_of_a_folder_follows_content_and_names_but_not_readmes_or_caches(tmp_path):
    folder = tmp_path / "f"
    (folder / "sub" / "__pycache__").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.json").write_text("{}")
    first = demo.digest_path(folder)
    (folder / "README.md").write_text("notes")
    (folder / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\0")
    assert demo.digest_path(folder) == first
    (folder / "a.txt").write_text("alphA")
    assert demo.digest_path(folder) != first
    (folder / "a.txt").write_text("alpha")
    (folder / "a.txt").rename(folder / "c.txt")
    assert demo.digest_path(folder) != first
    assert demo.digest_path(tmp_path / "missing") is None
    assert demo.digest_path(folder / "c.txt") == demo.file_sha256(folder / "c.txt")


def test_freshness_names_what_changed(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "out.txt").write_text("y")
    section = {"inputs": [str(tmp_path / "in.txt")], "outputs": [str(tmp_path / "out.txt")], "knob": 1}
    stamp = tmp_path / "step.json"
    assert demo.freshness(stamp, section).reason == "never run"
    demo.write_stamp(stamp, "step", section, demo.digest_paths(section["inputs"]), 1.0)
    assert demo.freshness(stamp, section).fresh
    assert not demo.freshness(stamp, {**section, "knob": 2}).fresh
    (tmp_path / "out.txt").write_text("edited by hand")
    assert demo.freshness(stamp, section).reason.startswith("outputs changed since the step ran")
    (tmp_path / "out.txt").unlink()
    assert demo.freshness(stamp, section).reason == f"outputs missing: {tmp_path / 'out.txt'}"
    (tmp_path / "in.txt").write_text("new input")
    assert demo.freshness(stamp, section).reason == f"inputs changed: {tmp_path / 'in.txt'}"
    stamp.write_text("{not json")
    assert "unreadable" in demo.freshness(stamp, section).reason


def test_a_step_that_does_not_write_its_outputs_fails(tmp_path):
    section = {"inputs": [], "outputs": [str(tmp_path / "never-written")]}
    with pytest.raises(demo.DemoError, match=r"did not write .*never-written"):
        demo.write_stamp(tmp_path / "s.json", "train", section, {}, 1.0)


# ------------------------------------------------------------------------------------------ reuse and the plan
def test_plan_runs_what_a_step_needs_first():
    fake = demo.Demo(demo.load_config(), quiet_console()[0])
    assert fake.plan("eval") == ["setup", "data", "train", "eval"]
    assert fake.plan("serve") == ["setup", "data", "train", "serve"]
    assert fake.plan("teacher") == ["setup", "teacher"]
    assert fake.plan("setup") == ["setup"]


def test_a_rerun_reuses_finished_steps_and_redoes_what_changed(tmp_path):
    config = tiny_config(tmp_path)
    console, out = quiet_console()
    first = FakeSteps(config, console, command="train")
    assert demo.execute(first, "train") == (None, None)
    assert first.calls == ["setup", "data", "train"]
    assert [r.status for r in first.results] == ["done", "done", "done"]

    again = FakeSteps(config, console, command="train")
    demo.execute(again, "train")
    assert again.calls == []
    assert [r.status for r in again.results] == ["reused", "reused", "reused"]
    assert "reused: inputs unchanged since" in out.getvalue()

    (tmp_path / "data.in").write_text("a new sample\n")
    changed = FakeSteps(config, console, command="train")
    demo.execute(changed, "train")
    assert changed.calls == ["data", "train"]  # setup reused; data's new output is an input of train

    forced = FakeSteps(config, console, force={"train"}, command="train")
    demo.execute(forced, "train")
    assert forced.calls == ["train"]
    assert json.loads((tmp_path / "logs" / "train.json").read_text())["step"] == "train"


def test_a_failed_step_names_itself_and_its_log_and_keeps_no_stamp(tmp_path):
    config = tiny_config(tmp_path)
    console, out = quiet_console()
    failing = FakeSteps(config, console, command="all")
    failing.fail = "train"
    step, err = demo.execute(failing, "all")
    assert step == "train" and isinstance(err, demo.DemoError)
    line = demo.failure_line(step, err)
    assert line.startswith("error: demo step 'train' failed: `python -c ")
    assert "exited with status 3" in line and line.endswith(f"its log: {tmp_path / 'logs' / 'train.log'}")
    assert "\n" not in line
    assert "the tool said why" in out.getvalue()  # the log's last lines are shown
    assert not (tmp_path / "logs" / "train.json").exists()
    assert [(r.step, r.status) for r in failing.results][-1] == ("train", "failed")
    assert "eval" not in failing.calls and "Summary" in out.getvalue()


def test_bad_settings_are_one_line_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "demo.yaml"
    bad.write_text(yaml.safe_dump({"log_dir": "logs/demo", "steps": {"setup": {}}}))
    assert demo.main(["status", "--config", str(bad)]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"error: {bad}: steps: unknown [] / missing") and "\n" not in out
    bad.write_text("steps: [unclosed\n")
    assert demo.main(["status", "--config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().out


def test_shipped_settings_inputs_exist_or_come_from_an_earlier_step():
    config = demo.load_config()
    produced: set[str] = set()
    for step in demo.ORDER:
        section = config["steps"][step]
        for path in section.get("inputs", []):
            made = any(path == out or path.startswith(out + "/") or out.startswith(path + "/") for out in produced)
            assert made or (ROOT / path).exists(), f"bimedix/demo.yaml: steps.{step}: input {path} is nowhere"
        produced |= set(section.get("outputs", []))
    assert config["steps"]["setup"]["outputs"] == [config["tiny_model"]]
    mix = yaml.safe_load((ROOT / config["steps"]["data"]["mix"]).read_text(encoding="utf-8"))
    assert mix["name"] == "bilingual" and mix["language_ratio"] == {"ar": 1, "en": 2}


# ------------------------------------------------------------------------------------------ the teacher
def teacher(tmp_path: Path) -> tuple[demo.Teacher, list[str]]:
    said: list[str] = []
    return demo.Teacher(demo.load_config(), tmp_path, said.append), said


def write_state(teacher_: demo.Teacher, pid: int, port: int = 1) -> None:
    state = {"pid": pid, "base_url": f"http://127.0.0.1:{port}/v1", "model_name": "bimedix-teacher"}
    state["model_path"] = teacher_.tiny_model
    teacher_.state_file.write_text(json.dumps(state))


def test_a_state_file_with_a_dead_pid_is_stale_and_removed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    t, said = teacher(tmp_path)
    write_state(t, gone.pid)
    assert t.live() is None
    assert not t.state_file.exists()
    assert said == [f"  found a stale {t.state_file} (pid {gone.pid} is not running): removed"]
    assert t.stop() == "no teacher was running"


def test_a_recycled_pid_that_is_not_a_teacher_is_never_signalled(tmp_path):
    t, _ = teacher(tmp_path)
    write_state(t, os.getpid())  # this very test process: alive, but its command line is not `serve up`
    assert t.live() is None
    write_state(t, os.getpid())
    assert t.stop(quiet=True) == f"no teacher was running (pid {os.getpid()} is gone, or is not a teacher)"
    assert not t.state_file.exists()


def test_garbage_in_the_state_file_is_not_a_teacher(tmp_path):
    t, said = teacher(tmp_path)
    t.state_file.write_text('{"pid": "12", "base_url": 5}')
    assert t.live() is None and not t.state_file.exists()
    assert said == [f"  {t.state_file} is unreadable: removed"]


def test_stop_signals_the_teachers_process_group_by_pid(tmp_path):
    # A stand-in whose command line reads like the teacher's (`... serve up ... --api-port 1`), with a
    # child in its process group: stop() must end both, by the group the state file names.
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    fake = subprocess.Popen([sys.executable, "-c", code, "serve", "up", "--api-port", "1"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_group(fake.pid)) < 2:
            time.sleep(0.05)
        assert len(_group(fake.pid)) == 2
        t, _ = teacher(tmp_path)
        write_state(t, fake.pid)
        assert demo.process_alive(fake.pid, t.needles(t.state()))
        assert t.stop(quiet=True) == f"stopped the teacher (serve up, pid {fake.pid})"
        fake.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group(fake.pid):
            time.sleep(0.05)
        assert _group(fake.pid) == []
        assert not t.state_file.exists()
    finally:
        if fake.poll() is None:
            fake.kill()


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group pgid, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


# ------------------------------------------------------------------------------------------ text
def test_model_output_is_printed_on_one_line_without_control_characters():
    assert demo.printable("a\x10b\n\tc") == "a\ufffdb c"
    arabic = "فَقْرُ الدَّم\u200f ـــ نقص ٣٢ mg"  # diacritics, an RTL mark, tatweel, Arabic-Indic digits, mixed script
    assert demo.printable(arabic) == arabic
    assert demo.printable("x" * 500, limit=10) == "x" * 9 + "…"
