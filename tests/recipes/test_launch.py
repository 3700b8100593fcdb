"""What `make train-*` / `make merge` do before Axolotl runs: the weights, the data, overlays,
launchers, and the one-line errors that replace tracebacks."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bimedix.paths import ROOT
from recipes.config import RecipeError
from recipes.datacheck import check_file
from recipes.launch import LaunchError, RunOptions, refresh_prepared, resolve, train, train_command
from recipes.registry import load_registry
from recipes.weights import WeightsError, locate
from tests.recipes.helpers import fixture_rows, run_cli

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


def test_ray_overlay_without_ray_names_the_pinned_install(tmp_path):
    if importlib.util.find_spec("ray") is not None:
        pytest.skip("ray is installed here")
    options = RunOptions("bilingual", overlay="ray", output_root=str(tmp_path))
    with pytest.raises(LaunchError, match=r'pip install "ray\[train\]==\d+\.\d+\.\d+"'):
        train(options, REGISTRY, launcher="accelerate", launcher_args="", dry_run=True)


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
        "error: this benchmark needs a CUDA GPU (torch sees none): run it on a GPU host, see recipes/README.md"
    ]
