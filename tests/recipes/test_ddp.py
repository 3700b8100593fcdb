"""Two training processes on the CPU (DDP over gloo), started by the command a multi-GPU user runs
(`python -m recipes train tiny --launcher-args "--num_processes 2"`), train what one process
trains with the same global batch (issue 22).

The tiny recipe is 1 packed row x 2 accumulation steps on one process; on two, world.py sets the
accumulation to 1, so both runs take 2 packed rows per optimizer step, and the multipack sampler
gives each step the same rows (TRAIN_STEPS = 2 stay within the fixture data's first epoch of 5
packed rows). The adapters must agree to float32 rounding (measured: bit for bit), step by step
the trainable tokens and the losses too. Were the accumulation left at 2, the two processes would take 4 rows per step:
the tokens per step double and the adapters part. Were the loss averaged per process (Axolotl's
setting, see recipes/axolotl_plugin.py), the LoRA updates would differ by about 20%.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import load_file

from recipes.trainlog import records
from tests.recipes.helpers import TRAIN_STEPS, run_cli

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)


@pytest.fixture(scope="module")
def runs(trained, data_dir, tmp_path_factory) -> dict[int, object]:
    """{1: the session's one-process training (conftest `trained`), 2: the same on two processes}."""
    out = tmp_path_factory.mktemp("two-processes")
    done = run_cli(
        "train", "tiny", "--data-dir", str(data_dir), "--output-root", str(out),
        "--set", f"max_steps={TRAIN_STEPS}", "--launcher-args=--num_processes 2",
    )  # fmt: skip
    assert done.returncode == 0, f"two processes:\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    return {1: trained, 2: out / "tiny"}


def log(run) -> str:
    return (run / "train.log").read_text(encoding="utf-8")


def steps(run) -> list[dict[str, float]]:
    return [r for r in records(log(run)) if "loss" in r]


def test_two_processes_start_and_keep_the_global_batch(runs):
    text = log(runs[2])
    resolved = yaml.safe_load((runs[2] / "axolotl.yaml").read_text(encoding="utf-8"))
    assert resolved["gradient_accumulation_steps"] == 1 and resolved["micro_batch_size"] == 1
    for rank in (0, 1):
        assert f"bimedix: training process rank {rank} of 2" in text
    assert "torch uses 1 CPU threads, OMP_NUM_THREADS=1, planned 1" in text  # 2 cores shared by 2
    assert "bimedix: the loss averages over the tokens of all processes" in text
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in text  # no rank trained alone


def test_each_step_takes_the_same_rows_and_loss_as_one_process(runs):
    one, two = steps(runs[1]), steps(runs[2])
    assert len(one) == len(two) == TRAIN_STEPS, "one metrics line per step: rank 0's, for the whole job"
    for key in ("tokens/total", "tokens/trainable"):
        assert [s[key] for s in two] == [s[key] for s in one], key
    for key in ("loss", "grad_norm"):  # printed to 4 significant digits
        assert [s[key] for s in two] == pytest.approx([s[key] for s in one], rel=2e-3), key


def test_the_adapter_is_the_one_process_adapter(runs):
    one = load_file(runs[1] / "adapter" / "adapter_model.safetensors")
    two = load_file(runs[2] / "adapter" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        # lr 1e-3: a 20% different gradient moves Adam's update by far more than atol
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)
