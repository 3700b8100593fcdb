"""What `make train-*` / `make merge` do before Axolotl runs: the weights, the data, overlays,
launchers, and the one-line errors that replace tracebacks."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bimedix.paths import ROOT
from recipes.config import RecipeError, parse_assignment
from recipes.datacheck import check_file
from recipes.launch import (
    LaunchError,
    RunOptions,
    plan_batch,
    ray_driver,
    refresh_prepared,
    rendezvous_args,
    resolve,
    train,
    train_command,
)
from recipes.registry import load_registry
from recipes.weights import WeightsError, locate
from tests.recipes.helpers import fixture_rows, run_cli

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)

REGISTRY = load_registry()


def test_missing_base_weights_is_one_line_saying_how_to_provide_them(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # no cached copy can answer
    done = run_cli("train", "bilingual", "--data-dir", str(data_dir), "--output-root", str(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    message = errors[0]
    assert "mistralai/Mixtral-8x7B-Instruct-v0.1 are not on this machine" in message
    assert "hf download mistralai/Mixtral-8x7B-Instruct-v0.1 --local-dir models/Mixtral-8x7B-Instruct-v0.1" in message
    assert "BASE_MODEL=models/Mixtral-8x7B-Instruct-v0.1" in message


def test_local_base_model_must_be_a_complete_checkpoint(tmp_path, tiny_model_dir):
    with pytest.raises(WeightsError, match=r"no such folder; pass BASE_MODEL=<folder>"):
        locate(str(tmp_path / "nope"), "bilingual", local=True)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    (partial / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))  # fmt: skip
    with pytest.raises(WeightsError, match=r"incomplete, missing model-00001-of-00002.safetensors"):
        locate(str(partial), "bilingual", local=True)
    assert locate(str(tiny_model_dir), "tiny", local=True) == tiny_model_dir


def test_data_problems_name_file_line_and_field(tmp_path):
    rows = fixture_rows()
    bad = [
        rows[12],  # tatweel-heavy Arabic: fine
        {"messages": [{"role": "assistant", "content": "نعم"}]},  # starts with the assistant
        {"messages": [{"role": "user", "content": "\u200fما سبب الإسقربوط؟"}]},  # no assistant turn
        {"messages": [{"role": "user", "content": "ما العلاج؟"}, {"role": "assistant", "content": "  "}]},
        {"text": "no messages"},
    ]
    path = tmp_path / "train.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in bad] + ["{not json", ""]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    count, problems = check_file(path)
    assert count == 7
    assert problems == [
        f"{path}:2: messages[0].role: expected 'user', got 'assistant'",
        f"{path}:3: messages: the last turn must be the assistant's (nothing to train on otherwise)",
        f"{path}:4: messages[1].content: missing or empty",
        f"{path}:5: messages: missing or empty (expected a list of {{role, content}})",
        f"{path}:6: not valid JSON (Expecting property name enclosed in double quotes, column 2)",
        f"{path}:8: not valid UTF-8",
    ]
    assert check_file(tmp_path / "train.jsonl")[0] == 7
    assert check_file(ROOT / "tests" / "recipes" / "fixtures" / "train.jsonl") == (len(rows), [])


def test_missing_data_says_make_data(tmp_path, tiny_model_dir):
    options = RunOptions("tiny", data_dir=str(tmp_path / "nodata"), output_root=str(tmp_path / "out"))
    with pytest.raises(LaunchError, match=r"processed/bilingual/train.jsonl: no such file; run `make data`"):
        train(options, REGISTRY, launcher="accelerate", launcher_args="", dry_run=True)


def test_overrides_reroot_data_and_outputs(tmp_path):
    resolved = resolve(
        RunOptions("arabic", base_model="models/mixtral", data_dir="elsewhere", output_root="runs", sets=["lora_r=64"]),
        REGISTRY,
    )
    data = resolved.recipe.data
    assert data["base_model"] == "models/mixtral"
    assert data["datasets"][0]["path"] == "elsewhere/processed/arabic/train.jsonl"
    assert data["test_datasets"][0]["path"] == "elsewhere/processed/arabic/val.jsonl"
    assert data["output_dir"] == "runs/arabic/adapter"
    assert data["dataset_prepared_path"] == "runs/arabic/prepared"
    assert data["lora_r"] == 64
    assert resolved.run_dir == ROOT / "runs" / "arabic"
    assert resolved.recipe.where(("lora_r",)) == "--set lora_r"
    with pytest.raises(RecipeError, match="expected key=value"):
        resolve(RunOptions("arabic", sets=["lora_r"]), REGISTRY)
    with pytest.raises(RecipeError, match="unknown variant 'mixtral'"):
        resolve(RunOptions("mixtral"), REGISTRY)


def test_overlays_and_launchers_build_the_axolotl_command():
    resolved = resolve(RunOptions("bilingual", overlay="zero2-2nodes"), REGISTRY)
    assert resolved.hardware.capabilities["n_gpu"] == 16
    assert resolved.recipe.data["deepspeed"] == "recipes/multigpu/deepspeed_zero2.json"
    assert resolved.recipe.data["gradient_accumulation_steps"] == 1
    assert resolved.recipe.data["lora_target_parameters"]  # the recipe underneath is intact
    command = train_command(resolved.run_dir / "axolotl.yaml", "torchrun", "--nnodes 2 --nproc_per_node 8")
    assert command[0] == str(Path(sys.executable).parent / "axolotl")
    assert command[1:] == ["train", "outputs/bilingual/axolotl.yaml", "--launcher", "torchrun", "--", "--nnodes", "2", "--nproc_per_node", "8"]  # fmt: skip
    assert train_command(resolved.run_dir / "axolotl.yaml")[-2:] == ["--launcher", "accelerate"]
    with pytest.raises(LaunchError, match="unknown launcher"):
        train_command(resolved.run_dir / "axolotl.yaml", "mpirun")


def test_changed_data_clears_the_prepared_cache(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n')
    prepared = tmp_path / "prepared"
    recipe = resolve(RunOptions("tiny", sets=[f"dataset_prepared_path={prepared}"]), REGISTRY).recipe
    refresh_prepared(recipe, [data])
    (prepared / "abc123").mkdir()
    refresh_prepared(recipe, [data])  # same data: the tokenized copy stays
    assert (prepared / "abc123").exists()
    data.write_text('{"messages": [1]}\n')
    refresh_prepared(recipe, [data])  # new content, same path: Axolotl would reuse it, we clear it
    assert not (prepared / "abc123").exists()


def test_gpu_step_benchmark_refuses_cleanly_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = subprocess.run(
        [sys.executable, "benchmarks/recipes_gpu_step.py"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: this benchmark needs a CUDA GPU (torch sees none): run it on a GPU host, see recipes/README.md; "
        "--dry-run checks it on a CPU"
    ]


# --------------------------------------------------------------------------- --set


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("eval_strategy=no", "no"),  # YAML 1.1 would make it False, which the schema refuses
        ("save_strategy=no", "no"),
        ("x=off", "off"),
        ("x=yes", "yes"),
        ("x=true", True),
        ("x=False", False),
        ("x=3", 3),
        ("x=0.02", 0.02),
        ("x={use_reentrant: false}", {"use_reentrant": False}),
        ("x=[a, no]", ["a", "no"]),
    ],
)
def test_set_reads_yaml_with_only_true_and_false_as_booleans(text, value):
    _, parsed = parse_assignment(text)
    assert parsed == value and type(parsed) is type(value)


# --------------------------------------------------------------------------- the global batch


def dry_run(data_dir, tmp_path, tiny_model_dir, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(
        "train", "bilingual", "--dry-run", "--base-model", str(tiny_model_dir), "--data-dir", str(data_dir),
        "--output-root", str(tmp_path), *extra,
    )  # fmt: skip


def resolved_recipe(tmp_path) -> dict:
    return yaml.safe_load((tmp_path / "bilingual" / "axolotl.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("launcher_args", "how"),
    [
        (
            ["--launcher", "torchrun", "--launcher-args", "--nproc_per_node 8"],
            "torchrun --nnodes 1 x --nproc_per_node 8",
        ),
        (["--launcher", "accelerate", "--launcher-args=--num_processes=8"], "accelerate --num_processes 8"),
    ],
)
def test_eight_processes_without_an_overlay_keep_the_global_batch(data_dir, tmp_path, tiny_model_dir, launcher_args, how):  # fmt: skip
    done = dry_run(data_dir, tmp_path, tiny_model_dir, *launcher_args)
    assert done.returncode == 0, done.stderr
    assert (
        f"global batch: 16 packed rows per optimizer step = micro_batch_size 1 x gradient_accumulation_steps 2 x 8 "
        f"processes ({how}); the recipe is written for 1 with gradient_accumulation_steps 16: set to 2"
    ) in done.stdout
    assert "plain DDP" in done.stdout and "OVERLAY=zero2 or OVERLAY=fsdp2 or OVERLAY=ray" in done.stdout
    assert resolved_recipe(tmp_path)["gradient_accumulation_steps"] == 2


def test_a_world_size_that_cannot_keep_the_batch_is_refused_naming_the_overlays(data_dir, tmp_path, tiny_model_dir):
    done = dry_run(
        data_dir, tmp_path, tiny_model_dir, "--launcher", "torchrun", "--launcher-args", "--nproc_per_node 3"
    )
    assert done.returncode == 1
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        "error: 3 processes cannot keep the recipe's global batch of 16 packed rows (micro_batch_size 1 x 3 does "
        "not divide it): start 1, 2, 4, 8 or 16 processes (OVERLAY=zero2 or OVERLAY=fsdp2 or OVERLAY=ray for 8 GPUs; "
        "OVERLAY=zero2-2nodes for 16 GPUs)"
    ]


def test_overlays_launch_as_written_and_on_fewer_gpus(tmp_path):
    resolved = resolve(RunOptions("bilingual", overlay="zero2-2nodes"), REGISTRY)
    world, batch = plan_batch(resolved, REGISTRY, "torchrun", "--nnodes 2 --nproc_per_node 8")
    assert (world.processes, batch.accumulation, batch.changed) == (16, 1, False)
    resolved = resolve(RunOptions("bilingual", overlay="zero2"), REGISTRY)
    world, batch = plan_batch(resolved, REGISTRY, "accelerate", "", device_count=lambda: 4)
    assert world.launcher_args == ("--num_processes", "4")  # passed to accelerate explicitly
    assert (world.processes, batch.accumulation) == (4, 4)
    assert resolved.recipe.data["gradient_accumulation_steps"] == 4
    assert resolved.recipe.where(("gradient_accumulation_steps",)) == "4 processes"
    resolved = resolve(RunOptions("bilingual", overlay="ray"), REGISTRY)
    world, batch = plan_batch(resolved, REGISTRY, "accelerate", "", device_count=lambda: 1)
    assert (world.processes, batch.accumulation) == (8, 2)  # ray_num_workers, not this host's GPUs
    for launcher, args, message in [
        ("torchrun", "--nnodes 1:4 --nproc_per_node 8", "an elastic range leaves the process count open"),
        ("torchrun", "--nproc_per_node many", "pass a number"),
        ("accelerate", "--num_machines 2", "pass --num_processes"),
    ]:
        with pytest.raises(LaunchError, match=message):
            plan_batch(resolve(RunOptions("bilingual"), REGISTRY), REGISTRY, launcher, args)


def test_accelerate_config_file_sets_the_count(tmp_path):
    config = tmp_path / "accelerate.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_processes: 2\n")
    resolved = resolve(RunOptions("bilingual"), REGISTRY)
    world, batch = plan_batch(resolved, REGISTRY, "accelerate", f"--config_file {config}", device_count=lambda: 8)
    assert world.processes == 2 and batch.accumulation == 8
    assert world.launcher_args == ("--num_processes", "2", "--config_file", str(config))


def test_the_plugin_refuses_a_world_size_nobody_planned():
    from recipes.axolotl_plugin import check_world_size
    from recipes.world import WORLD_SIZE_ENV

    check_world_size({})  # not started by `python -m recipes train`
    check_world_size({WORLD_SIZE_ENV: "8", "WORLD_SIZE": "8"})
    check_world_size({WORLD_SIZE_ENV: "1"})  # a single process has no WORLD_SIZE
    with pytest.raises(RuntimeError, match=r"the launcher started 8 training processes, but .* for 1"):
        check_world_size({WORLD_SIZE_ENV: "1", "WORLD_SIZE": "8"})


# --------------------------------------------------------------------------- the data


def test_training_never_builds_data():
    """`make train-*` and `make bench-recipes` read what `make data` built; they never rebuild it."""
    targets = ["train-tiny", "train-bilingual", "train-arabic", "train-english", "bench-recipes"]
    done = subprocess.run(["make", "-n", *targets], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "data_prep" not in done.stdout
    assert done.stdout.count("-m recipes train") == 4


@pytest.fixture(scope="module")
def sample_data(tiny_model_dir, tmp_path_factory) -> Path:
    """The default `make data` build (the embedded samples) of the bilingual mix, by data_prep itself."""
    root = tmp_path_factory.mktemp("sample-data")
    done = subprocess.run(
        [sys.executable, "-m", "data_prep", "build", "--mix", "data_prep/mixes/bilingual.yaml", "--out",
         str(root / "processed"), "--tokenizer", str(tiny_model_dir), "--no-decontaminate", "--workers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_train_prints_the_mix_and_manifest_it_trains_on(sample_data, tmp_path, tiny_model_dir):
    done = run_cli("train", "tiny", "--dry-run", "--data-dir", str(sample_data), "--output-root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    manifest = sample_data / "processed" / "bilingual" / "manifest.json"
    recorded = json.loads(manifest.read_text())
    lines = [line for line in done.stdout.splitlines() if line.startswith("data: ")]
    assert len(lines) == 2
    for line, name in zip(lines, ("train.jsonl", "val.jsonl"), strict=True):
        assert line.startswith(f"data: {sample_data / 'processed' / 'bilingual' / name}: ")
        assert f"sha256 {recorded['outputs'][name]['sha256']}" in line
        assert f"from the mix data_prep/mixes/bilingual.yaml (sha256 {recorded['mix']['sha256']})" in line
        assert f"manifest {manifest} (sha256 {hashlib.sha256(manifest.read_bytes()).hexdigest()})" in line
        assert "(the embedded samples only)" in line


def test_a_gpu_recipe_refuses_the_embedded_samples_unless_told(sample_data, tmp_path, tiny_model_dir):
    done = dry_run(sample_data, tmp_path, tiny_model_dir)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {sample_data / 'processed' / 'bilingual' / 'train.jsonl'}: built only from the embedded samples "
        "(data_prep/samples/, toy data) by the default `make data`: build the real data with `make data MIX=<your mix>`, "
        "or pass ALLOW_SAMPLE_DATA=1 (--allow-sample-data) to train this 1x-h100-80gb recipe on the samples anyway"
    ]
    done = dry_run(sample_data, tmp_path, tiny_model_dir, "--allow-sample-data")
    assert done.returncode == 0, done.stderr
    assert "(the embedded samples only)" in done.stdout


def test_data_changed_after_make_data_is_refused(sample_data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(sample_data, copy)
    train_file = copy / "processed" / "bilingual" / "train.jsonl"
    lines = train_file.read_text(encoding="utf-8").splitlines(keepends=True)
    train_file.write_text("".join(lines[:-1]), encoding="utf-8")  # one row fewer than the manifest says
    done = run_cli("train", "tiny", "--dry-run", "--data-dir", str(copy), "--output-root", str(tmp_path / "out"))
    assert done.returncode == 1
    assert f"error: {train_file}: sha256 " in done.stderr
    assert "the file changed after data_prep wrote it" in done.stderr


def test_manifest_reader_takes_only_what_it_needs(tmp_path):
    from recipes.provenance import read_provenance

    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    assert read_provenance(data) is None
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"sources": [{"files": [{"file": "data_prep/samples/a.jsonl", "hub": None}, {"hub": "org/set"}]}], "new_key": {"x": 1}}))  # fmt: skip
    found = read_provenance(data)
    assert found.mix is None and found.recorded_sha256 is None
    assert found.inputs == ("data_prep/samples/a.jsonl", "hub:org/set")
    assert not found.only_from(("data_prep/samples/",))
    manifest.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"manifest.json: expected a JSON object, got list"):
        read_provenance(data)


def test_several_cpu_processes_launch_as_one_distributed_job():
    """accelerate starts one process on a CPU unless told --multi_gpu, and the ranks train alone
    unless they see ACCELERATE_USE_CPU=true (recipes/launch.py, `cpu_processes`)."""
    from recipes.launch import cpu_processes
    from recipes.world import WorldPlan

    cpu, gpu = resolve(RunOptions("tiny"), REGISTRY).hardware, resolve(RunOptions("bilingual"), REGISTRY).hardware
    two = WorldPlan(2, "accelerate --num_processes 2", ("--num_processes", "2"), 2)
    assert cpu_processes(cpu, "accelerate", two) == (("--multi_gpu", "--num_processes", "2"), {"ACCELERATE_USE_CPU": "true"})  # fmt: skip
    named = WorldPlan(2, "", ("--multi_gpu", "--num_processes", "2"), 2)
    assert cpu_processes(cpu, "accelerate", named)[0] == named.launcher_args  # not twice
    nodes = WorldPlan(2, "", ("--nnodes", "2", "--nproc_per_node", "1"), 1)
    assert cpu_processes(cpu, "torchrun", nodes) == (nodes.launcher_args, {"ACCELERATE_USE_CPU": "true"})
    assert cpu_processes(gpu, "accelerate", two) == (two.launcher_args, {})
    one = WorldPlan(1, "", ("--num_processes", "1"), 1)
    assert cpu_processes(cpu, "accelerate", one) == (one.launcher_args, {})


def test_the_plugin_refuses_ranks_that_would_train_alone(tmp_path):
    from transformers import TrainingArguments

    from recipes.axolotl_plugin import check_trainer_world

    class Started:  # what the plugin reads of a Trainer: its arguments
        args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])

    check_trainer_world(Started(), {"WORLD_SIZE": "1"})
    with pytest.raises(RuntimeError, match="started 2 training processes, but the Trainer runs 1 as one job"):
        check_trainer_world(Started(), {"WORLD_SIZE": "2"})


def test_every_node_of_a_torchrun_launch_joins_the_same_rendezvous():
    """Axolotl would give each node a random --rdzv_id (the nodes never meet); every node gets the same."""
    nodes = ("--nnodes", "2", "--nproc_per_node", "8", "--rdzv_backend", "c10d", "--rdzv_endpoint", "head:29500")
    assert rendezvous_args("torchrun", nodes, "bilingual") == (*nodes, "--rdzv_id", "bimedix-bilingual")
    assert rendezvous_args("torchrun", (*nodes, "--rdzv_id", "job7"), "bilingual") == (*nodes, "--rdzv_id", "job7")
    assert rendezvous_args("torchrun", ("--nproc_per_node", "8"), "bilingual") == ("--nproc_per_node", "8")
    assert rendezvous_args("accelerate", nodes, "bilingual") == nodes


def test_ray_train_runs_axolotl_as_one_driver(capsys):
    """use_ray in the config: through accelerate, an 8-GPU host would start 8 Ray drivers."""
    assert ray_driver({"use_ray": True}, "accelerate", "") == ("python", "")
    assert "axolotl runs as one driver process (launcher python, not accelerate)" in capsys.readouterr().out
    assert ray_driver({}, "accelerate", "--num_processes 8") == ("accelerate", "--num_processes 8")
    with pytest.raises(LaunchError, match="LAUNCHER_ARGS '--num_processes 8' would be ignored"):
        ray_driver({"use_ray": True}, "accelerate", "--num_processes 8")
