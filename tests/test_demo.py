"""The demo runner's own logic, fast and offline: digests and stamps, reuse, the plan, failures naming
their step and log, the teacher's state file (dead PIDs, recycled PIDs, stop by process group), the
LLM settings it derives, the English-prose check of the served answer, and the floors (bimedix/
imports no stage; the demo sits on top).

The whole demo is not run here: CI runs it through the README's quick start (bimedix/quickstart.py).
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from bimedix.paths import ROOT
from demo import runner as demo


def quiet_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, soft_wrap=True), buffer


def tiny_config(tmp_path: Path) -> dict:
    """The shipped config, each step reading its own file and its upstream steps' outputs under tmp_path."""
    config = demo.load_config()
    config["log_dir"] = str(tmp_path / "logs")
    for step in ("data", "train", "eval", "serve"):
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
        inputs = "".join(Path(p).read_text() for p in self.section(step)["inputs"] if Path(p).exists())
        Path(self.section(step)["outputs"][0]).write_text(f"{step} output of: {inputs}")

    def _teacher_step(self):
        return self._record(demo.StepResult("teacher", "skipped", 0.0))


for _step in ("data", "train", "eval", "serve"):
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
    assert demo.digest_path(folder / "c.txt") == demo.sha256_file(folder / "c.txt")


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
    assert fake.plan("eval") == ["data", "train", "eval"]
    assert fake.plan("serve") == ["data", "train", "serve"]
    assert fake.plan("teacher") == ["teacher"]
    assert fake.plan("data") == ["data"]


def test_a_rerun_reuses_finished_steps_and_redoes_what_changed(tmp_path):
    config = tiny_config(tmp_path)
    console, out = quiet_console()
    first = FakeSteps(config, console, command="train")
    assert demo.execute(first, "train") == (None, None)
    assert first.calls == ["data", "train"]
    assert [r.status for r in first.results] == ["done", "done"]

    again = FakeSteps(config, console, command="train")
    demo.execute(again, "train")
    assert again.calls == []
    assert [r.status for r in again.results] == ["reused", "reused"]
    assert "reused: inputs unchanged since" in out.getvalue()

    (tmp_path / "train.in").write_text("a new recipe\n")
    changed = FakeSteps(config, console, command="train")
    demo.execute(changed, "train")
    assert changed.calls == ["train"]  # data reused

    (tmp_path / "data.in").write_text("a new sample\n")
    changed = FakeSteps(config, console, command="train")
    demo.execute(changed, "train")
    assert changed.calls == ["data", "train"]  # data's new output is an input of train

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
    bad.write_text(yaml.safe_dump({"log_dir": "logs/demo", "steps": {"data": {}}}))
    assert demo.main(["status", "--config", str(bad)]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"error: {bad}: steps: unknown [] / missing") and "\n" not in out
    bad.write_text("steps: [unclosed\n")
    assert demo.main(["status", "--config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().out


def test_shipped_settings_inputs_exist_or_come_from_an_earlier_step_or_make():
    config = demo.load_config()
    made_by_make = (config["model"] + "/", config["teacher"] + "/")  # `make small-model`, a prerequisite of every step
    produced: set[str] = set()
    for step in demo.ORDER:
        section = config["steps"][step]
        for path in section.get("inputs", []):
            made = any(path == out or path.startswith(out + "/") or out.startswith(path + "/") for out in produced)
            made = made or path.startswith(made_by_make)
            assert made or (ROOT / path).exists(), f"demo/demo.yaml: steps.{step}: input {path} is nowhere"
        produced |= set(section.get("outputs", []))
    makefile = (ROOT / "demo" / "demo.mk").read_text(encoding="utf-8")
    for step in ("demo", *(f"demo-{s}" for s in demo.ORDER)):
        assert re.search(rf"^{step}: .*\bsmall-model\b", makefile, re.MULTILINE), f"{step} does not build the models"


def test_the_demo_mix_trains_only_on_what_passed_the_checks():
    config = demo.load_config()
    mix_path = ROOT / config["steps"]["data"]["mix"]
    mix = yaml.safe_load(mix_path.read_text(encoding="utf-8"))
    assert mix["name"] == "bilingual" and mix["language_ratio"] == {"ar": 1, "en": 2}
    paths = [source["path"] for source in mix["sources"]]
    assert not [p for p in paths if "unverified" in p]
    llm_out = (ROOT / config["steps"]["data"]["llm_out"]).resolve()
    named = {(mix_path.parent / p).resolve() for p in paths}
    assert {llm_out / "synthesize" / "chats.jsonl", llm_out / "translate" / "translated.jsonl"} <= named
    for path in paths:
        if "data/demo" not in path:
            assert list(mix_path.parent.glob(path)), f"{mix_path}: {path} matches nothing"


def test_the_demo_says_plainly_its_answers_are_not_medical_advice(tmp_path):
    notice = " ".join(demo.load_config()["notice"].split())
    assert "135" in notice and "NOT medical advice" in notice and "NOT good medicine" in notice
    shipped = yaml.safe_load(demo.CONFIG_FILE.read_text(encoding="utf-8"))
    del shipped["notice"]
    bad = tmp_path / "demo.yaml"
    bad.write_text(yaml.safe_dump(shipped))
    with pytest.raises(demo.DemoError, match="notice"):
        demo.load_config(bad)


# ------------------------------------------------------------------------------------------ the LLM settings
def test_llm_settings_keep_the_shipped_thresholds_and_apply_the_overrides(tmp_path):
    config = demo.load_config()
    cfg = config["steps"]["data"]
    runner = demo.Demo(config, quiet_console()[0])
    written = runner.llm_settings(cfg, tmp_path)
    shipped = yaml.safe_load((ROOT / cfg["llm_settings_base"]).read_text(encoding="utf-8"))
    used = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert used["synthesize"]["max_attempts"] == cfg["llm_settings"]["synthesize"]["max_attempts"]
    assert used["translate"]["qa"] == shipped["translate"]["qa"]  # every QA threshold as shipped
    assert used["synthesize"]["answer_coverage"] == shipped["synthesize"]["answer_coverage"]
    from data_prep.llm.config import load_settings

    assert load_settings(written).synthesize.max_tokens == cfg["llm_settings"]["synthesize"]["max_tokens"]
    typo = {**cfg, "llm_settings": {"synthesize": {"max_token": 10}}}
    with pytest.raises(demo.DemoError, match=r"llm_settings\.synthesize: not in .*\['max_token'\]"):
        runner.llm_settings(typo, tmp_path)


# ------------------------------------------------------------------------------------------ the teacher
def teacher(tmp_path: Path) -> tuple[demo.Teacher, list[str]]:
    said: list[str] = []
    return demo.Teacher(demo.load_config(), tmp_path, said.append), said


def write_state(teacher_: demo.Teacher, pid: int, port: int = 1) -> None:
    state = {"pid": pid, "base_url": f"http://127.0.0.1:{port}/v1", "model_name": "bimedix-teacher"}
    state["model_path"] = teacher_.model
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


def test_prose_check_tells_english_prose_from_silence_noise_and_other_scripts():
    rules = demo.load_config()["steps"]["serve"]["prose"]
    answer = (
        "Iron deficiency anaemia often causes tiredness, weakness and pale skin. Some people are short of breath "
        "on exertion or have a fast heartbeat, and the nails may become brittle."
    )
    assert demo.prose_check(answer, rules)["ok"]
    assert not demo.prose_check("", rules)["ok"]  # what the base model answers in the [INST] layout
    assert "distinct" in demo.prose_check("anemia " * 30, rules)["why"]
    arabic = "فقر الدم الناتج عن نقص الحديد يسبب التعب والضعف وشحوب الجلد وضيق التنفس عند بذل الجهد"
    assert "Latin letters" in demo.prose_check(arabic, rules)["why"]
    assert not demo.prose_check("xq zzt brrk plo wex quun tresk ablo fep rrin gok snarf", rules)["ok"]


# ------------------------------------------------------------------------------------------ floors
def _imported_top_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_shared_package_imports_no_stage_and_nothing_imports_the_demo():
    stages = {"data_prep", "recipes", "eval_tasks", "serve", "demo", "benchmarks"}
    for path in sorted((ROOT / "bimedix").rglob("*.py")):
        wrong = _imported_top_packages(path) & stages
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}: bimedix/ is the ground floor"
    for stage in ("data_prep", "recipes", "eval_tasks", "serve"):
        for path in sorted((ROOT / stage).rglob("*.py")):
            assert "demo" not in _imported_top_packages(path), f"{path.relative_to(ROOT)} imports the demo"


def test_the_failure_reasons_of_the_llm_stages_are_counted_once_per_item(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    rows = [
        {"reasons": ["question: the reply was cut off (max_tokens reached)", "option:A: the reply was cut off (x)",
                     "question: placeholders missing: ⟦1⟧ (45); copy each exactly once"]},
        {"reasons": ["option:B: the glossary term 'asthma' must be translated as 'الربو'"]},
        {"provenance": {"reasons": ["no turns: expected lines starting 'Patient:' or 'Doctor:'"]}},
    ]  # fmt: skip
    ledger.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "not json\n")
    summary = demo._reasons(ledger)
    assert "the reply was cut off (1 of 3)" in summary and "placeholders missing (1 of 3)" in summary
    assert "the glossary term (1 of 3)" in summary and "no turns (1 of 3)" in summary
    assert demo._reasons(tmp_path / "missing.jsonl") == ""


def test_a_table_row_without_scores_is_told_from_one_with_scores():
    # eval_tasks' tables write a missing score as `–` (issue 12); the demo prints only the tables it scored.
    assert demo.has_scores("| SmolLM2-135M MoE (base) |  16.7 |   33.3 |   – |")
    assert not demo.has_scores("| SmolLM2-135M MoE (base) |   –   |    –   | –           |")
    assert not demo.has_scores("| SmolLM2-135M MoE (base) |   nan   |  nan |")


def test_all_stops_the_teacher_before_the_train_step_starts(tmp_path):
    """The teacher (a stand-in with the teacher's command line and a child in its process group) is
    gone, by PID, before `all` starts training: only the data step uses it."""
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)"
    fake = subprocess.Popen([sys.executable, "-c", code, "serve", "up", "--api-port", "1"], start_new_session=True)
    seen: dict[str, list[int]] = {}

    class WithTeacher(FakeSteps):
        def _teacher_step(self):
            self.teacher.state_file.parent.mkdir(parents=True, exist_ok=True)
            write_state(self.teacher, fake.pid)
            return self._record(demo.StepResult("teacher", "done", 0.0))

        def _work(self, step):
            seen[step] = _group(fake.pid)
            super()._work(step)

    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_group(fake.pid)) < 2:
            time.sleep(0.05)
        assert len(_group(fake.pid)) == 2
        console, _ = quiet_console()
        run = WithTeacher(tiny_config(tmp_path), console, command="all")
        assert demo.execute(run, "all") == (None, None)
        assert len(seen["data"]) == 2  # the teacher served the data step
        assert seen["train"] == seen["eval"] == seen["serve"] == []  # and was gone before training
        assert not run.teacher.state_file.exists()
        assert [r.note for r in run.results if r.step == "teacher"] == [", stopped"]
    finally:
        if fake.poll() is None:
            os.killpg(fake.pid, 9)
