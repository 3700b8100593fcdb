"""`make env-gpu` (`python -m recipes install-gpu`): the GPU extras of requirements/gpu.txt
(DeepSpeed for the zero2 overlays) installed into the running environment with the project's
uv, constrained by requirements/main.lock so that nothing the lock pins moves. (Ray Train for
OVERLAY=ray is in the lock itself: axolotl's `ray` extra.)

There is no flash-attn among them, on purpose. The GPU recipes use `attn_implementation: sdpa`
with Axolotl's `sdpa_varlen`: with sample packing it runs each packed row through
`torch.nn.attention.varlen.varlen_attn` with cu_seqlens from position_ids, a flash kernel that
ships inside torch (>= 2.10), so packed samples stay apart without the flash-attn package
(axolotl/monkeypatch/attention/sdpa_varlen.py; enabled in axolotl/loaders/patch_manager.py,
`_apply_sdpa_varlen_patch`, for CUDA bf16/fp16, head_dim <= 256 and no sliding window, which is
Mixtral-8x7B: head_dim 128, sliding_window null). flash-attn 2.8.3 is on the package index as
source only (`pip download flash-attn==2.8.3 --only-binary=:all:` finds nothing): pip builds it,
and under build isolation its setup.py cannot import torch and fails. Whoever wants
flash_attention_2 anyway installs it after torch with `.uv/bin/uv pip install --python
.venv/bin/python --no-build-isolation flash-attn==2.8.3` (a long CUDA build) and passes
`--set attn_implementation=flash_attention_2`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from bimedix.envs import uv_binary
from bimedix.paths import ROOT
from recipes.config import rel

GPU_REQUIREMENTS = ROOT / "requirements" / "gpu.txt"
LOCK = ROOT / "requirements" / "main.lock"


def install_commands(python: str, uv: str) -> list[list[str]]:
    """uv, not pip: the environments are uv's and carry no pip of their own."""
    return [[uv, "pip", "install", "--python", python, "-r", rel(GPU_REQUIREMENTS), "-c", rel(LOCK)]]


def install_gpu(*, print_only: bool = False) -> int:
    for command in install_commands(sys.executable, rel(uv_binary())):
        print("+ " + shlex.join(command), flush=True)
        if print_only:
            continue
        code = subprocess.run(command, cwd=ROOT).returncode
        if code != 0:
            print(f"error: installing {rel(GPU_REQUIREMENTS)} failed (exit {code})", file=sys.stderr)
            return code
    return 0
