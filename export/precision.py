"""Export precisions: which tensors of a model become fp16, and how the residual stream is kept in range.

"int8" and "int4" are weight-only: the torch model stays fp32 and export/quantize.py quantizes the traced
graph's MatMul weights for ONNX Runtime's CPU provider.

TensorRT 11 builds strongly typed networks only, so an fp16 engine needs an fp16 ONNX graph (docs/conventions.md §4.3).
`--precision fp16` converts the torch model before tracing (README "Precision" has the measurements):

* fp16: the embedding table, every projection matrix (time-mix r/k/v/output, channel-mix, medium excitation, head),
  the token-shift mixes, and so every GEMM, sigmoid, relu², tanh and token-shift lerp; the state slots att_xx and
  ffn_xx (activation dtype, docs/families/rwkv4.md §1.7). k and v enter the WKV op in fp16 and y leaves it in fp16.
* fp32: the WKV parameters w, u (inputs of the op), the WKV arithmetic inside the op, the recurrent state
  att_aa/bb/pp, the medium path (squeeze weights, carry λ, macc, m, the medium projections W_km, W_vm and β = -1e30,
  which fp16 cannot hold; docs/families/rwkv4.md §1.9, docs/families/rrwkv.md §2.7) and every LayerNorm
  (computed on an fp32 input with fp32 weights, then cast to fp16: its mean and variance are the reductions most
  sensitive to fp16 rounding).
* The residual stream x runs in fp32 (RESIDUAL_FP32, the default): each sub-block's fp16 output is cast up and
  added in fp32, so x cannot overflow however it grows with depth and its additions do not round to fp16.
  ChatRWKV's alternative, RESIDUAL_RESCALE (att.output / ffn.value of layer i divided by 2^(i // 6) and x halved
  after every 6th block, fp16 residual), is kept for `python -m rrwkv_trt.reference.precision_check` to measure.
* Logits leave the graph as fp32 (one Cast after the fp16 head GEMM): samplers and `compare` see one dtype at
  every precision; the values carry the fp16 head's rounding.
"""
from __future__ import annotations

import torch
from torch import nn

from rrwkv_trt.core.metadata import PRECISIONS

RESIDUAL_FP32 = "fp32"
RESIDUAL_RESCALE = "rescale"
RESIDUALS = (RESIDUAL_FP32, RESIDUAL_RESCALE)
RESCALE_LAYER = 6  # ChatRWKV's fp16 value (docs/families/rwkv4.md §1.1)


def activation_dtype(precision: str) -> str:
    """The numpy dtype name of activations (and of the state slots typed "activation dtype") for `precision`."""
    check_precision(precision)
    return "float16" if precision == "fp16" else "float32"


def check_precision(precision: str, residual: str | None = None) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if residual is not None and residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {list(RESIDUALS)}, got {residual!r}")


@torch.no_grad()
def apply_precision_(model: nn.Module, precision: str, fp32_parameters: frozenset[str] = frozenset(),
                     residual: str | None = None) -> tuple[str, ...]:
    """Convert an fp32 model (families.build_model) in place for `precision`.

    Args:
        model: an fp32 Rwkv4Model / RrwkvModel.
        precision: "fp32", "int8" or "int4" (no change: weight-only precisions are applied to the traced
            graph by export/quantize.py) or "fp16".
        fp32_parameters: last name components of the parameters kept fp32 at fp16, besides every LayerNorm's
            (the family's `Family.fp32_parameters`).
        residual: fp16 only: RESIDUAL_FP32 (None) or RESIDUAL_RESCALE.
    Returns:
        the transforms applied, for the rrwkv.transforms metadata (empty for fp32).
    """
    check_precision(precision, residual)
    if precision != "fp16":
        if residual is not None:
            raise ValueError("residual applies to fp16 only")
        return ()
    residual = residual or RESIDUAL_FP32
    transforms = []
    if residual == RESIDUAL_RESCALE:
        for i, block in enumerate(model.blocks):
            scale = 2.0 ** (i // RESCALE_LAYER)  # exact in binary floating point; divided before the fp16 cast
            block.att.output.weight.div_(scale)
            block.ffn.value.weight.div_(scale)
        model.rescale_layer = RESCALE_LAYER
        transforms.append(f"rescale: att.output.weight and ffn.value.weight of layer i divided by "
                          f"2^(i // {RESCALE_LAYER}); x halved after every {RESCALE_LAYER}th block")
    else:
        model.residual_dtype = torch.float32
    keep = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    for name, p in model.named_parameters():
        if id(p) not in keep and name.rsplit(".", 1)[-1] not in fp32_parameters:
            p.data = p.data.half()
    transforms.append(f"cast to float16 except LayerNorm and {', '.join(sorted(fp32_parameters))}")
    if residual == RESIDUAL_FP32:
        transforms.append("residual stream in float32")
    return tuple(transforms)
