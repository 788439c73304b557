"""Seeded GatedOuterScan inputs and the float64 reference, for the plugin tests (test_gated_outer_scan_kernels.py,
test_gated_outer_scan_ort.py)."""
from __future__ import annotations

import torch

from rrwkv_trt.export.ops.gated_outer_scan import naive_gated_outer_scan

OP = "gated_outer_scan"
NAMES = ("y", "S_out")  # "y" selects the spec's output tolerance, anything else its state tolerance
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def gos_inputs(B: int, T: int, H: int, K: int, V: int, dtype=torch.float32, seed: int = 0, lb: str = "mixed",
               zero_state: bool = False) -> dict:
    """q = swish(randn), f (logits around +1: decays 0.3..1), v [.., V] in `dtype`; lb [H, K] f32: "zero" (layer 0),
    "mixed" (head 0 zero, the others in [0, 0.95)) or "high" (in [0.95, 0.999999], keys near 0); S0 f32, randn
    unless zero_state; scale K^-0.5."""
    g = torch.Generator().manual_seed(seed)
    x = {"q": torch.nn.functional.silu(torch.randn(B, T, H, K, generator=g)),
         "f": 2 * torch.randn(B, T, H, K, generator=g) + 1, "v": torch.randn(B, T, H, V, generator=g)}
    x = {n: t.to(dtype) for n, t in x.items()}
    bound = {"zero": torch.zeros(H, K), "high": 0.95 + 0.049999 * torch.rand(H, K, generator=g),
             "mixed": 0.95 * torch.rand(H, K, generator=g) * (torch.arange(H) > 0)[:, None]}[lb]
    state = torch.zeros(B, H, K, V) if zero_state else torch.randn(B, H, K, V, generator=g)
    return dict(x, lb=bound, state=state, scale=K ** -0.5)


def reference(x: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """naive_gated_outer_scan in float64 (the state's dtype) from x's own values; o in q's dtype."""
    return naive_gated_outer_scan(x["q"], x["f"], x["lb"].double(), x["v"], x["state"].double(), x["scale"])
