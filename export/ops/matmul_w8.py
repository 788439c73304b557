"""rrwkv::MatMulW8 (plugins/matmul_w8/README.md): the PyTorch reference of the CPU and CUDA kernels.

`naive_matmul_w8` does the kernels' arithmetic (matmulW8Math.h) step by step: each row of x quantised to int16
with one scale, exact integer dot products per block, the blocks accumulated in order in fp32. The format
(quantize_w8 / dequantize_w8), the ONNX schema and the FunctionProto are torch-free, in export/w8_pack.py and
export/matmul_w8.py: `rrwkv-trt export --precision int8` rewrites MatMuls after tracing, nothing here is traced.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..matmul_w8 import ACT_MAX
from ..w8_pack import GROUP_COLS, check_block_size


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """x [M, K] f32 -> (xq [M, K] int64 in [-32767, 32767], x_scale [M] f32): w8RowScale / w8QuantizeActivation.
    A row with a NaN or infinity gets x_scale NaN (and xq 0); an all-zero row gets x_scale 0."""
    x = x.to(torch.float32)
    max_abs = x.abs().amax(dim=1)
    bad = ~torch.isfinite(x).all(dim=1)
    inv = torch.where(max_abs > 0, torch.tensor(float(ACT_MAX)) / max_abs.clamp_min(1e-45), torch.zeros_like(max_abs))
    inv = torch.where(bad, torch.zeros_like(inv), inv)
    xq = torch.round(torch.nan_to_num(x * inv[:, None], nan=0.0)).to(torch.int64)
    x_scale = torch.where(bad, torch.full_like(max_abs, float("nan")), max_abs / ACT_MAX)
    return xq, x_scale


def naive_matmul_w8(x: Tensor, w: Tensor, scale: Tensor, N: int, block_size: int = 128) -> Tensor:
    """y [..., N] f32 = MatMulW8(x [..., K] f32, w int8 [G, P, 64, 2], scale f32 [G, NB, 64]).

    The block sum is fp32 as in the kernels: fmaf(float(dot), scale, sum) emulated in float64 (the product of two
    floats is exact there) and rounded to float32, equal to the kernels' fmaf except for rare double-rounding ties."""
    check_block_size(block_size)
    G, P, _, _ = w.shape
    NB = scale.shape[1]
    K = x.shape[-1]
    if NB * block_size != 2 * P or -(-K // block_size) != NB or -(-N // GROUP_COLS) != G:
        raise ValueError(f"matmul_w8: x [..., {K}], w {tuple(w.shape)}, scale {tuple(scale.shape)} and "
                         f"N={N}, block_size={block_size} do not fit (w: [ceil(N/64), Kpad/2, 64, 2])")
    rows = x.reshape(-1, K)
    xq, x_scale = quantize_rows(rows)
    xq = torch.nn.functional.pad(xq, (0, 2 * P - K))                        # [M, Kpad]
    q = w.to(torch.int64).permute(1, 3, 0, 2).reshape(2 * P, G * GROUP_COLS)   # [Kpad, 64 G]
    s = scale.permute(1, 0, 2).reshape(NB, G * GROUP_COLS).to(torch.float64)
    total = torch.zeros(rows.shape[0], G * GROUP_COLS, dtype=torch.float32)
    for b in range(NB):
        rows_b = slice(b * block_size, (b + 1) * block_size)
        dot = (xq[:, rows_b] @ q[rows_b]).to(torch.float32).to(torch.float64)  # exact sums, rounded like float(dot)
        total = (dot * s[b] + total.to(torch.float64)).to(torch.float32)
    y = total[:, :N] * x_scale[:, None]
    return y.reshape(*x.shape[:-1], N)
