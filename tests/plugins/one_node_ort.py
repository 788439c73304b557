"""One-node rrwkv models and the ONNX Runtime sessions that run them, for the per-op ORT tests
(test_<op>_ort.py): the node with the plugin attributes, named symbolic dims, the op's FunctionProto attached on
request, and a session on the fused kernels of librrwkv_ort_ops.so or on stock ORT."""
from __future__ import annotations

import onnx
import onnxruntime as ort
from kernel_shim import ORT_OPS, require_library
from onnx import TensorProto
from onnx import helper as oh

from rrwkv_trt.export.ops import attach_functions, register_schemas


def one_node_model(op_type: str, inputs: dict[str, list[str]], outputs: dict[str, list[str]],
                   dtypes: dict[str, int], attrs: dict, functions: bool, ranked: bool = True) -> onnx.ModelProto:
    """One rrwkv::`op_type` node over `inputs` -> `outputs` (name -> symbolic dims; no shapes unless `ranked`, so
    that only the kernel checks them), each tensor of `dtypes.get(name, FLOAT)`, with `attrs` and the plugin
    attributes; its FunctionProto attached when `functions`."""
    vi = lambda n, dims: oh.make_tensor_value_info(n, dtypes.get(n, TensorProto.FLOAT),  # noqa: E731
                                                   dims if ranked else None)
    node = oh.make_node(op_type, list(inputs), list(outputs), domain="rrwkv", plugin_namespace="rrwkv",
                        plugin_version="1", **attrs)
    graph = oh.make_graph([node], f"one_{op_type}", [vi(n, d) for n, d in inputs.items()],
                          [vi(n, d) for n, d in outputs.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18), oh.make_opsetid("rrwkv", 1)], ir_version=10)
    if not functions:
        return model
    register_schemas()
    return attach_functions(model)


def ort_session(model: onnx.ModelProto, library: bool = True, threads: int = 0) -> ort.InferenceSession:
    """`model` on the CPU provider, with librrwkv_ort_ops.so registered when `library` (skips where not built)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if library:
        so.register_custom_ops_library(str(require_library(ORT_OPS)))
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
