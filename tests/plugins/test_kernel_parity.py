"""GPU hosts: the CUDA kernels vs the CPU kernels (build/plugins/rrwkv_kernel_parity, from
plugins/tests/kernelParity.cu and every op folder's <op>Parity.cu, built by `make plugins` wherever nvcc is found).
Skips without a GPU."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from kernel_shim import REPO

PARITY = REPO / "build" / "plugins" / "rrwkv_kernel_parity"


def _gpu_skip_reason() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no CUDA GPU: nvidia-smi not found"
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True)
    if listed.returncode != 0 or "GPU" not in listed.stdout:
        return "no CUDA GPU: nvidia-smi -L lists none"
    return None


@pytest.mark.gpu
def test_cuda_kernels_match_cpu_kernels():
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    if not PARITY.is_file():
        pytest.fail(f"{PARITY} not built; run `make plugins` on this GPU host (needs nvcc)", pytrace=False)
    result = subprocess.run([str(PARITY)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
