"""Trace a model to ONNX: one rrwkv node per layer, local functions attached, metadata written.

Precision (export/precision.py): "fp32", "fp16" (fp16 weights and activations, fp32 LayerNorms, WKV and
medium arithmetic, recurrent state and residual stream; fp32 logits), or "int8"/"int4" (the fp32 graph with its
MatMul weights quantized for ONNX Runtime's CPU provider, export/quantize.py), recorded as metadata
rrwkv.precision.

The folder it writes: export/model_folder.py.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from rrwkv_trt.core.state import StateSpec
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import WEIGHT_ONLY_PRECISIONS, ModelInfo
from rrwkv_trt.core.names import LOGITS, LOGITS_FROM

from .checkpoint import Checkpoint
from .families import Family, build_model, family_of
from .fingerprint import model_fingerprint
from .ops import attach_functions, custom_translation_table, register_schemas
from .model_folder import check_output_folder, write_export
from .precision import activation_dtype, apply_precision_
from .quantize import quantize_matmul_weights

OPSET = 18
EXAMPLE_BATCH = 2


class FlatStateModule(nn.Module):
    """forward(input_ids, *state_in) -> (logits, *state_out), both state lists in spec order."""

    def __init__(self, model: nn.Module, spec: StateSpec):
        super().__init__()
        self.model = model
        self.keys = [t.key for t in spec.tensors()]

    def forward(self, input_ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, new = self.model(input_ids, dict(zip(self.keys, state)))
        return (logits, *(new[k] for k in self.keys))


def trace_to_onnx(model: nn.Module, spec: StateSpec, family: Family) -> onnx.ModelProto:
    """Dynamo export with dynamic batch and seq; returns the model with functions attached."""
    register_schemas()
    ids, state = family.tracing_inputs(model, EXAMPLE_BATCH)
    batch, seq = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("seq", min=1, max=1 << 20)
    names = [t.input_name for t in spec.tensors()]
    dynamic = {"input_ids": {0: batch, 1: seq}} | {n: {0: batch} for n in names}
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            FlatStateModule(model, spec), (ids, *(state[t.key] for t in spec.tensors())), dynamo=True,
            opset_version=OPSET, input_names=["input_ids", *names], output_names=["logits", *spec.output_names()],
            dynamic_shapes=(dynamic["input_ids"], tuple(dynamic[n] for n in names)),  # (ids, *state)
            custom_translation_table=custom_translation_table(), verbose=False)
    return add_logits_from(attach_functions(program.model_proto), family.head_input_op)


def add_logits_from(proto: onnx.ModelProto, head_input_op: str) -> onnx.ModelProto:
    """Add the int64 [1] input LOGITS_FROM: the final norm (a `head_input_op` node) and the head then run on positions
    logits_from .. seq-1 only, so a prefill that needs the last position's logits skips the head's work (30% of a
    169M RWKV-4's prefill FLOPs) and its [B, T, V] output. The recurrence and the state do not depend on it."""
    graph = proto.graph
    producer = {out: node for node in graph.node for out in node.output}
    node, chain = producer[LOGITS], []
    while node.op_type != head_input_op:  # logits <- [Cast] <- head MatMul <- [Cast] <- final norm
        chain.append(node)
        node = producer[node.input[0]]
    chain.append(node)
    end, axis = f"{LOGITS_FROM}.end", f"{LOGITS_FROM}.axis"
    graph.initializer.extend([onnx.numpy_helper.from_array(np.array([np.iinfo(np.int64).max]), end),
                              onnx.numpy_helper.from_array(np.array([1]), axis)])
    graph.input.append(onnx.helper.make_tensor_value_info(LOGITS_FROM, onnx.TensorProto.INT64, [1]))
    rows = f"{LOGITS_FROM}.rows"
    graph.node.insert(list(graph.node).index(node), onnx.helper.make_node(
        "Slice", [node.input[0], LOGITS_FROM, end, axis], [rows], name=f"node_{LOGITS_FROM}"))
    node.input[0] = rows
    # The exporter's shapes say these tensors have `seq` positions; they now have seq - logits_from.
    stale = {out for n in chain for out in n.output}
    kept = [v for v in graph.value_info if v.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    out = next(o for o in graph.output if o.name == LOGITS)
    out.type.tensor_type.shape.dim[1].dim_param = "logits_seq"
    return proto


def _quiet_exporter():
    """The exporter logs progress and irrelevant warnings (e.g. torchvision missing) through `torch.onnx`."""
    logger = logging.getLogger("torch.onnx")

    class Quiet:
        def __enter__(self):
            self.level = logger.level
            logger.setLevel(logging.ERROR)

        def __exit__(self, *exc):
            logger.setLevel(self.level)

    return Quiet()


def export_checkpoint(ckpt: Checkpoint, out_dir: str | Path, tokenizer: str | Path | None = None,
                      precision: str = "fp32", residual: str | None = None) -> Path:
    """Export `ckpt` into `out_dir` (which must not exist or be an empty folder).

    Args:
        precision: "fp32", "fp16", "int8" or "int4" (export/precision.py).
        residual: fp16 only; None is the fp32 residual stream, "rescale" ChatRWKV's RESCALE_LAYER (for
            precision_check's measurements).
    """
    out_dir = check_output_folder(out_dir)
    tokenizer = Path(tokenizer) if tokenizer is not None else ckpt.tokenizer
    if tokenizer is not None and not tokenizer.is_file():
        raise UserError(f"tokenizer file {tokenizer} does not exist")
    fingerprint = model_fingerprint(ckpt.config, ckpt.state_dict)  # of the source weights, before any cast
    try:
        act = activation_dtype(precision)
        family = family_of(ckpt.config)
        model = build_model(ckpt.config, ckpt.state_dict)
        transforms = ckpt.transforms + apply_precision_(model, precision, family.fp32_parameters, residual)
    except ValueError as err:
        raise UserError(str(err)) from None
    spec = ckpt.config.state_spec(act)
    proto = trace_to_onnx(model, spec, family)
    if precision in WEIGHT_ONLY_PRECISIONS:  # fp32 graph, MatMul weights quantized after tracing
        proto, quantized = quantize_matmul_weights(proto, precision)
        transforms += quantized
    info = ModelInfo(ckpt.config, spec, precision, transforms, fingerprint)
    return write_export(proto, info, out_dir, tokenizer)
