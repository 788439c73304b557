"""Weight-only w16 / int8 / int4 exports for ONNX Runtime on the CPU (`rrwkv-trt export --precision w16|int8|int4`).

Every MatMul whose weight is a constant initializer (time-mix r/k/v/output, channel-mix key/receptance/value, the
head; RRWKV's medium projections too) becomes one node whose weight is stored in fewer bits:
  * w16: `rrwkv::MatMulWF16` (export/ops/matmul_wf16.py, export/quantize_wf16.py, plugins/matmul_wf16/): the weight
    rounded to fp16, activations and sums fp32; the fused CPU kernel of librrwkv_ort_ops.so, or its FunctionProto
    in stock ONNX Runtime. Not the TensorRT `fp16` export: there activations are fp16 too;
  * int8 and int4: symmetric integers with one fp32 scale per BLOCK_SIZE inputs of each output column; int8 is
    `rrwkv::MatMulW8` (export/ops/matmul_w8.py, export/quantize_w8.py, plugins/matmul_w8/), int4 `rrwkv::MatMulW4`
    (export/ops/matmul_w4.py, export/quantize_w4.py, plugins/matmul_w4/), each a fused CPU kernel or its
    FunctionProto; both quantise activations to int16 per row.
Activations, the embedding table, LayerNorms, the WKV/medium parameters and arithmetic, the recurrent state and the
logits stay fp32, so the state spec and the ONNX contract are those of an fp32 export.

Why these choices (measured on the project's 2-core machine: README "Speed on the edge CPU", int8 / int4 and
"Why an int8 op of our own"; plugins/matmul_wf16/README.md for w16, plugins/matmul_w4/README.md for int4):
  * w16 stores fp16 rather than bf16: at the same bytes and the same decode speed (both stream at the fp32 MatMul's
    bandwidth), fp16's 3 more mantissa bits gave the shipped model 9x smaller logit errors.
  * int8 and int4 are ops of our own rather than ONNX Runtime's `com.microsoft::MatMulNBits`: they read the weights
    in place (MatMulNBits prepacks a copy) and faster at decode, with int16 instead of int8 activations.
  * The weights are written as rrwkv nodes, not as weight-only QDQ (int8 DequantizeLinear per column -> MatMul):
    ORT 1.32 rewrites QDQ itself into a MatMulNBits with its own block and accuracy settings.
  * BLOCK_SIZE 128 rather than 32: faster decode (measured with MatMulNBits) at the same greedy agreement with fp32.
TensorRT engines are built from fp32 or fp16 exports.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import onnx

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import from_metadata
from rrwkv_trt.core.paths import resolve_model_path

from .model_folder import check_output_folder, write_export
from .quantize_w4 import quantize_matmuls_w4
from .quantize_w8 import quantize_matmuls_w8
from .quantize_wf16 import quantize_matmuls_wf16

WEIGHT_ONLY_BITS = {"w16": 16, "int8": 8, "int4": 4}
BLOCK_SIZE = 128


def quantize_matmul_weights(proto: onnx.ModelProto, precision: str) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """Store every constant-weight MatMul of `proto` at `precision`, in place: "w16" -> rrwkv::MatMulWF16, "int8" ->
    rrwkv::MatMulW8, "int4" -> rrwkv::MatMulW4.

    Returns:
        the quantized model (model-local functions and metadata kept) and the transform it records.
    """
    before = _constant_matmuls(proto)
    scales = "along the input dim, fp32 scales"
    if precision == "w16":
        converted = quantize_matmuls_wf16(proto)
        op = "rrwkv::MatMulWF16 (fp32 activations and sums, plugins/matmul_wf16)"
        scales = "rounded to fp16"
    elif precision == "int8":
        converted = quantize_matmuls_w8(proto, BLOCK_SIZE)
        op = f"rrwkv::MatMulW8 (int16 activations, plugins/matmul_w8), 8-bit symmetric, block {BLOCK_SIZE}"
    else:
        converted = quantize_matmuls_w4(proto, BLOCK_SIZE)
        op = f"rrwkv::MatMulW4 (int16 activations, plugins/matmul_w4), 4-bit symmetric, block {BLOCK_SIZE}"
    left = _constant_matmuls(proto)
    if left or converted != len(before):
        raise RuntimeError(f"quantizer converted {converted} of {len(before)} constant-weight MatMuls; "
                           f"left as MatMul: {left[:4]}")
    transform = f"MatMul weights -> {op} {scales} ({converted} MatMuls)"
    return proto, (transform,)


def quantize_export(fp32_model: str | Path, out_dir: str | Path, precision: str) -> Path:
    """Quantize an existing fp32 export (a folder or its model.onnx) into `out_dir`, without re-tracing: the same
    graph and metadata as `rrwkv-trt export --precision <precision>` of the same checkpoint."""
    if precision not in WEIGHT_ONLY_BITS:
        raise UserError(f"precision must be one of {sorted(WEIGHT_ONLY_BITS)}, got {precision!r}")
    path = resolve_model_path(fp32_model)
    out_dir = check_output_folder(out_dir)
    proto = onnx.load(path)
    info = from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(path))
    if info.precision != "fp32":
        raise UserError(f"{path} is a {info.precision} export; quantize an fp32 export")
    proto, transforms = quantize_matmul_weights(proto, precision)
    info = dataclasses.replace(info, precision=precision, transforms=info.transforms + transforms)
    tokenizer = path.parent / "tokenizer.json"
    return write_export(proto, info, out_dir, tokenizer if tokenizer.is_file() else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Quantize an fp32 export's MatMul weights (w16/int8/int4, ONNX Runtime CPU)")
    p.add_argument("fp32_model", help="an fp32 export folder or its model.onnx")
    p.add_argument("-o", "--out", required=True, help="folder to create")
    p.add_argument("--precision", choices=sorted(WEIGHT_ONLY_BITS), default="int8")
    args = p.parse_args(argv)
    try:
        out = quantize_export(args.fp32_model, args.out, args.precision)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'model.onnx'}", file=sys.stderr)
    return 0


def _constant_matmuls(proto: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes whose second input is an initializer."""
    inits = {i.name for i in proto.graph.initializer}
    return [n.name for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in inits]


if __name__ == "__main__":
    sys.exit(main())
