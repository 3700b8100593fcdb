"""benchmarks/recipes_gpu_step.py: its --dry-run proves on a CPU that the real run's arguments pass
every check; its figures come from Axolotl's log and nvidia-smi, and a missing one is an error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from bimedix.paths import ROOT
from recipes.trainlog import summarise

pytestmark = pytest.mark.heavy  # runs Axolotl or loads models: scheduled first (tests/conftest.py)

SCRIPT = ROOT / "benchmarks" / "recipes_gpu_step.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("recipes_gpu_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_passes_every_check_with_the_real_arguments(tmp_path, tiny_model_dir):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for layers in (2, 4):
        assert f"dry run, {layers} layers: checks passed" in done.stdout
        assert f"axolotl train {tmp_path}/runs-{layers}/bilingual/axolotl.yaml --launcher python" in done.stdout
    assert "nothing trained, nothing measured" in done.stdout


LOG = """
[2026-11-30 00:20:36,195] [INFO] [axolotl.utils.trainer] sample_packing_eff_est across ranks: [0.95, 0.9712]
{'loss': '7.1', 'memory/max_allocated (GiB)': '20.5', 'memory/device_reserved (GiB)': '24.0', 'tokens/trainable': 1000, 'tokens/total': 4096, 'epoch': '0.1'}
 10%|#         | 1/8 [00:09<01:03,  9.1s/it]
{'loss': '7.0', 'memory/max_allocated (GiB)': '21.0', 'memory/device_reserved (GiB)': '26.5', 'tokens/train_per_sec_per_gpu': '500', 'tokens/trainable': 2000, 'tokens/total': 8192, 'epoch': '0.2'}
{'loss': '6.9', 'memory/max_allocated (GiB)': '20.9', 'memory/device_reserved (GiB)': '25.0', 'tokens/train_per_sec_per_gpu': '250', 'tokens/trainable': 2500, 'tokens/total': 12288, 'epoch': '0.3'}
"""


def test_summary_reads_reserved_memory_packing_and_real_tokens():
    summary = summarise(LOG)
    assert summary.losses == [7.1, 7.0, 6.9]
    assert summary.step_seconds == [2.0, 2.0]  # trainable tokens done / their rate
    assert summary.tokens_per_second == pytest.approx(8192 / 4.0)  # token slots, padding included
    assert summary.trainable_tokens_per_second == pytest.approx(1500 / 4.0)
    assert summary.peak_reserved_gib == 26.5 and summary.peak_allocated_gib == 21.0
    assert summary.packing_efficiency == pytest.approx(0.9712)  # the largest rank's


def test_a_log_without_memory_figures_has_no_peak_not_a_zero():
    summary = summarise(LOG.replace("'memory/", "'other/"))
    assert summary.peak_reserved_gib is None and summary.peak_allocated_gib is None


def row(layers: int, step: float, reserved: float | None, device: float) -> dict:
    return {
        "layers": layers,
        "step_seconds": step,
        "token_slots_per_second": 4096 / step,
        "packing_efficiency": 0.9,
        "peak_reserved_gib": reserved,
        "peak_device_gib": device,
    }


def test_extrapolation_is_linear_through_2_and_4_layers():
    bench = bench_module()
    x = bench.extrapolate([row(4, 2.0, 30.0, 33.0), row(2, 1.2, 26.0, 29.0)])
    assert x["step_seconds"] == pytest.approx(2.0 + 0.4 * 28)  # 0.4 s per layer
    assert x["peak_reserved_gib"] == pytest.approx(30.0 + 2.0 * 28)
    assert x["peak_device_gib"] == pytest.approx(33.0 + 2.0 * 28)
    assert x["real_tokens_per_second"] == pytest.approx(4096 * 0.9 / x["step_seconds"])
    assert x["hours_per_epoch_bimed_1gpu"] == pytest.approx(632e6 / x["real_tokens_per_second"] / 3600)
    assert "an estimate" in x["method"]
    with pytest.raises(bench.BenchError, match="peak_reserved_gib missing"):
        bench.extrapolate([row(4, 2.0, None, 33.0), row(2, 1.2, 26.0, 29.0)])
    with pytest.raises(bench.BenchError, match="needs two layer counts"):
        bench.extrapolate([row(2, 1.2, 26.0, 29.0)])
