"""The weight format of rrwkv::MatMulW8 (plugins/matmul_w8/README.md), in numpy: quantize, pack, unpack.

A weight W [K, N] (y = x @ W) is stored as symmetric int8 with one fp32 scale per (block of `block_size` rows,
column): scale = max |W[block, n]| / 127, q = round-half-even(W / scale) in [-127, 127] (an all-zero block has
scale 0 and q 0). The packing serves the kernels' inner loop, one row pair of 64 columns at a time:
    w     int8    [G, P, 64, 2]: w[g, p, j, i] = q[2p + i, 64g + j]      G = ceil(N / 64), P = Kpad / 2
    scale float32 [G, NB, 64]:   scale[g, b, j] of column 64g + j      NB = ceil(K / block_size), Kpad = NB * block_size
Rows K..Kpad-1 and columns N..64G-1 are zero. torch-free: `export.quantize` runs without PyTorch.
"""
from __future__ import annotations

import numpy as np

GROUP_COLS = 64
Q_MAX = 127
MAX_BLOCK = 256  # plugins/matmul_w8/matmulW8Math.h kW8MaxBlock: an int32 block sum cannot overflow


def check_block_size(block_size: int) -> None:
    if not (2 <= block_size <= MAX_BLOCK and block_size % 2 == 0):
        raise ValueError(f"block_size must be an even value in [2, {MAX_BLOCK}], got {block_size}")


def padded_dims(K: int, N: int, block_size: int) -> tuple[int, int, int]:
    """(G, NB, Kpad) of a [K, N] weight."""
    check_block_size(block_size)
    nb = -(-K // block_size)
    return -(-N // GROUP_COLS), nb, nb * block_size


def padded_blocks(weight: np.ndarray, block_size: int) -> tuple[int, int, int, np.ndarray]:
    """A float weight [K, N] checked (non-empty, finite), zero-padded to [Kpad, 64 G] and cut into its row blocks:
    (G, NB, Kpad, blocks [NB, block_size, 64 G] f32), what quantize_w8 and quantize_w4 start from."""
    if weight.ndim != 2 or 0 in weight.shape:
        raise ValueError(f"weight must be a non-empty [K, N] matrix, got shape {weight.shape}")
    if not np.isfinite(weight).all():
        raise ValueError("weight has NaN or infinite entries; they cannot be quantized")
    K, N = weight.shape
    G, NB, Kpad = padded_dims(K, N, block_size)
    padded = np.zeros((Kpad, G * GROUP_COLS), np.float32)
    padded[:K, :N] = weight
    return G, NB, Kpad, padded.reshape(NB, block_size, G * GROUP_COLS)


def quantize_w8(weight: np.ndarray, block_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Quantize and pack a float weight [K, N] (K, N >= 1). Returns (w int8 [G, P, 64, 2], scale fp32 [G, NB, 64])."""
    G, NB, Kpad, blocks = padded_blocks(weight, block_size)
    scale = (np.abs(blocks).max(axis=1) / np.float32(Q_MAX)).astype(np.float32)  # [NB, Npad]
    safe = np.where(scale > 0, scale, np.float32(1))
    q = np.clip(np.rint(blocks / safe[:, None, :]), -Q_MAX, Q_MAX).astype(np.int8).reshape(Kpad, G * GROUP_COLS)
    w = q.reshape(Kpad // 2, 2, G, GROUP_COLS).transpose(2, 0, 3, 1)      # [G, P, 64, 2]
    return np.ascontiguousarray(w), np.ascontiguousarray(scale.reshape(NB, G, GROUP_COLS).transpose(1, 0, 2))


def unpack_w8(w: np.ndarray) -> np.ndarray:
    """The int8 q [Kpad, 64G] of a packed w [G, P, 64, 2]."""
    G, P, _, _ = w.shape
    return w.transpose(1, 3, 0, 2).reshape(2 * P, G * GROUP_COLS)


def dequantize_w8(w: np.ndarray, scale: np.ndarray, K: int, N: int) -> np.ndarray:
    """The float32 weight [K, N] that (w, scale) stand for: q * scale."""
    q = unpack_w8(w).astype(np.float32)
    G, NB, _ = scale.shape
    s = np.repeat(scale.transpose(1, 0, 2).reshape(NB, G * GROUP_COLS), q.shape[0] // NB, axis=0)
    return (q * s)[:K, :N]
