"""The weight format of rrwkv::MatMulW4 (plugins/matmul_w4/README.md), in numpy: quantize, pack, unpack.

A weight W [K, N] (y = x @ W) is stored as symmetric int4 with one fp32 scale per (block of `block_size` rows,
column): with `peak` the block's entry of largest |W| (the first in row order on a tie), scale = peak / -8 and
q = round-half-even(W / scale) clipped to [-8, 7], so the peak itself is exactly q = -8 and all 16 codes are used
(ggml's Q4_0 rule; a scale of max |W| / 7 would leave -8 unused and make the step 8/7 as coarse). An all-zero block
has scale 0 and q 0. The packing serves the kernels' inner loop, one row pair of 64 columns (64 bytes) at a time:
    w     int8    [G, P, 64]: byte 4c + 2i + (t >> 1) of w[g, p], nibble t & 1 (low first),
                              holds q[2p + i, 64g + 16t + c]
    scale float32 [G, NB, 64]: scale[g, b, j] of column 64g + j      G = ceil(N / 64), P = Kpad / 2
with NB = ceil(K / block_size), Kpad = NB * block_size; rows K..Kpad-1 and columns N..64G-1 are zero.
torch-free: `export.quantize` runs without PyTorch.
"""
from __future__ import annotations

import numpy as np

from .w8_pack import GROUP_COLS, padded_blocks

Q_MIN, Q_MAX = -8, 7


def quantize_w4(weight: np.ndarray, block_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Quantize and pack a float weight [K, N] (K, N >= 1). Returns (w int8 [G, P, 64], scale fp32 [G, NB, 64])."""
    G, NB, Kpad, blocks = padded_blocks(weight, block_size)
    peak = np.take_along_axis(blocks, np.abs(blocks).argmax(axis=1)[:, None, :], axis=1)[:, 0, :]  # [NB, Npad]
    scale = (peak / np.float32(-8)).astype(np.float32)
    safe = np.where(scale != 0, scale, np.float32(1))
    q = np.clip(np.rint(blocks / safe[:, None, :]), Q_MIN, Q_MAX).astype(np.int8).reshape(Kpad, G * GROUP_COLS)
    return pack_w4(q), np.ascontiguousarray(scale.reshape(NB, G, GROUP_COLS).transpose(1, 0, 2))


def pack_w4(q: np.ndarray) -> np.ndarray:
    """Pack int4 values q [Kpad, 64G] (in [-8, 7], Kpad even) into w int8 [G, Kpad / 2, 64]."""
    Kpad, npad = q.shape
    nib = (q.astype(np.uint8) & 0xF).reshape(Kpad // 2, 2, npad // GROUP_COLS, 4, 16)  # [P, i, G, t, c]
    nib = nib.transpose(2, 0, 4, 1, 3)                                                  # [G, P, c, i, t]
    packed = nib[..., 0::2] | (nib[..., 1::2] << 4)                                     # [G, P, c, i, t >> 1]
    return np.ascontiguousarray(packed.reshape(npad // GROUP_COLS, Kpad // 2, GROUP_COLS).view(np.int8))


def unpack_w4(w: np.ndarray) -> np.ndarray:
    """The int4 values q [Kpad, 64G] (int8 in [-8, 7]) of a packed w [G, P, 64]."""
    G, P, _ = w.shape
    u = w.view(np.uint8).reshape(G, P, 16, 2, 2)                                         # [G, P, c, i, t >> 1]
    nib = np.stack([u & 0xF, u >> 4], axis=-1).reshape(G, P, 16, 2, 4).astype(np.int8)  # [G, P, c, i, t]
    q = np.where(nib >= 8, nib - 16, nib).astype(np.int8)
    return q.transpose(1, 3, 0, 4, 2).reshape(2 * P, G * GROUP_COLS)                      # [P, i, G, t, c]


def dequantize_w4(w: np.ndarray, scale: np.ndarray, K: int, N: int) -> np.ndarray:
    """The float32 weight [K, N] that (w, scale) stand for: q * scale."""
    q = unpack_w4(w).astype(np.float32)
    G, NB, _ = scale.shape
    s = np.repeat(scale.transpose(1, 0, 2).reshape(NB, G * GROUP_COLS), q.shape[0] // NB, axis=0)
    return (q * s)[:K, :N]
