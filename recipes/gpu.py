"""`make env-gpu` (`python -m recipes install-gpu`): the GPU extras of requirements/gpu.txt
(DeepSpeed for the zero2 overlays, Ray Train for OVERLAY=ray) installed into the running
environment, constrained by requirements/main.lock so that nothing the lock pins moves.

There is no flash-attn among them, on purpose. The GPU recipes use `attn_implementation: sdpa`
with Axolotl 0.19's `sdpa_varlen`: with sample packing it runs each packed row through
`torch.nn.attention.varlen.varlen_attn` with cu_seqlens from position_ids, a flash kernel that
ships inside torch (>= 2.10), so packed samples stay apart without the flash-attn package
(axolotl/monkeypatch/attention/sdpa_varlen.py; enabled in axolotl/loaders/patch_manager.py,
`_apply_sdpa_varlen_patch`, for CUDA bf16/fp16, head_dim <= 256 and no sliding window, which is
Mixtral-8x7B: head_dim 128, sliding_window null). flash-attn 2.8.3 is on the package index as
source only (`pip download flash-attn==2.8.3 --only-binary=:all:` finds nothing): pip builds it,
and under pip's default build isolation its setup.py cannot import torch and fails. Whoever wants flash_attention_2 anyway installs it after torch with
`pip install --no-build-isolation flash-attn==2.8.3` (a long CUDA build) and passes
`--set attn_implementation=flash_attention_2`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from bimedix.paths import ROOT
from recipes.config import rel

GPU_REQUIREMENTS = ROOT / "requirements" / "gpu.txt"
LOCK = ROOT / "requirements" / "main.lock"


def install_commands(python: str) -> list[list[str]]:
    return [[python, "-m", "pip", "install", "-r", rel(GPU_REQUIREMENTS), "-c", rel(LOCK)]]


def install_gpu(*, print_only: bool = False) -> int:
    for command in install_commands(sys.executable):
        print("+ " + shlex.join(command), flush=True)
        if print_only:
            continue
        code = subprocess.run(command, cwd=ROOT).returncode
        if code != 0:
            print(f"error: installing {rel(GPU_REQUIREMENTS)} failed (exit {code})", file=sys.stderr)
            return code
    return 0
