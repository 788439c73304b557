"""The weight format of rrwkv::MatMulWF16 (plugins/matmul_wf16/README.md), in numpy: pack and unpack.

A weight W [K, N] (y = x @ W) is stored as IEEE fp16 (round half to even), packed for the kernels' inner loop, one
row k of 64 output columns at a time:
    w float16 [G, K, 64]: w[g, k, j] = W[k, 64g + j]      G = ceil(N / 64); columns N..64G-1 are zero
torch-free: `export.quantize` runs without PyTorch.
"""
from __future__ import annotations

import numpy as np

GROUP_COLS = 64
FP16_MAX = float(np.finfo(np.float16).max)  # 65504: larger weights would become infinities


def pack_wf16(weight: np.ndarray, name: str = "weight") -> np.ndarray:
    """Round a float weight [K, N] (K, N >= 1) to fp16 and pack it: w float16 [G, K, 64]. `name` is the tensor's
    name in error messages."""
    if weight.ndim != 2 or 0 in weight.shape:
        raise ValueError(f"{name} must be a non-empty [K, N] matrix, got shape {weight.shape}")
    if not np.isfinite(weight).all():
        raise ValueError(f"{name} has NaN or infinite entries; they cannot be stored in fp16")
    peak = float(np.abs(weight).max())
    if peak > FP16_MAX:
        raise ValueError(f"{name} has |w| up to {peak:.6g}, beyond fp16's largest finite value {FP16_MAX:g}; "
                         "export at fp32 or int8 instead")
    K, N = weight.shape
    G = -(-N // GROUP_COLS)
    padded = np.zeros((K, G * GROUP_COLS), np.float16)
    padded[:, :N] = weight.astype(np.float32).astype(np.float16)  # one rounding, from fp32 (as the export holds)
    return np.ascontiguousarray(padded.reshape(K, G, GROUP_COLS).transpose(1, 0, 2))


def unpack_wf16(w: np.ndarray, N: int) -> np.ndarray:
    """The fp16 weight [K, N] of a packed w [G, K, 64]."""
    G, K, _ = w.shape
    return w.transpose(1, 0, 2).reshape(K, G * GROUP_COLS)[:, :N]
