"""The index of the weights that rrwkv kernels read in place: `model.onnx` + KERNEL_WEIGHTS_SUFFIX.

Written beside an export whose weights live in external data: every initializer there that feeds rrwkv nodes only
(MatMulW8's packed weights and scales, WKV's parameters), with its dtype, shape and byte range in the data file.
The format is core/kernel_weights.py's; OrtSession reads these into huge pages without the onnx package.
"""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper

from rrwkv_trt.core.kernel_weights import write_index
from rrwkv_trt.core.ops import DOMAIN


def kernel_weights(proto: onnx.ModelProto) -> list[dict]:
    """The external initializers of `proto` (as saved, with external data references) that only rrwkv nodes use."""
    domains: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            domains.setdefault(name, set()).add(node.domain)
    entries = []
    for init in proto.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL or domains.get(init.name) != {DOMAIN}:
            continue
        ext = {e.key: e.value for e in init.external_data}
        entries.append({"name": init.name, "dtype": str(helper.tensor_dtype_to_np_dtype(init.data_type)),
                        "shape": list(init.dims), "file": ext["location"], "offset": int(ext.get("offset", 0)),
                        "length": int(ext["length"])})
    return entries


def write_kernel_weights_index(model_path: Path) -> Path | None:
    """Write the index beside a saved `model_path` whose weights are in one external data file; returns its path,
    or None when rrwkv nodes use no external initializer."""
    proto = onnx.load(str(model_path), load_external_data=False)
    entries = kernel_weights(proto)
    if not entries:
        return None
    files = {e.pop("file") for e in entries}
    if len(files) != 1:
        raise ValueError(f"{model_path}: kernel weights in {len(files)} external files; export writes one")
    return write_index(model_path, model_path.parent / files.pop(), entries)
