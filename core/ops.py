"""The op registry: every rrwkv custom operator, once.

One entry per op names everything the rest of the project derives from it: the ONNX op_type (also the
FunctionProto name, the ONNX Runtime custom-op name and the TensorRT plugin name), the plugin folder
`plugins/<folder>/` (its C++ sources, CMake fragment, spec.yaml with the tolerances, README.md contract), and the
export-side module that holds the torch reference, the OpSchema, the dynamo translation and the FunctionProto
builder (its module-level `OP`, an export.ops.registry.OpDefinition). Tests check the plugins' registration tables,
folders and spec files against this list; adding an op is one folder and one entry here (docs/adding-an-op.md).
"""
from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "rrwkv"  # ONNX domain of every op, opset version DOMAIN_VERSION
DOMAIN_VERSION = 1
PLUGIN_NAMESPACE = "rrwkv"  # TensorRT plugin namespace; every node carries it as plugin_namespace
PLUGIN_VERSION = "1"  # every node carries it as plugin_version
# The string attributes every rrwkv node carries; TensorRT 10.15+ keys its plugin lookup on them (docs/onnx.md §0.3).
PLUGIN_ATTRIBUTES = {"plugin_namespace": PLUGIN_NAMESPACE, "plugin_version": PLUGIN_VERSION}


@dataclass(frozen=True)
class OpSpec:
    """One rrwkv operator. `cxx` is the C++ identifier stem: <cxx>PluginCreator, <cxx lowerCamel>OrtOps()."""

    name: str
    folder: str
    module: str
    cxx: str
    version: str = PLUGIN_VERSION

    @property
    def spec_path(self) -> str:
        """The machine-readable contract and tolerances, relative to the repository root."""
        return f"plugins/{self.folder}/spec.yaml"


OPS: tuple[OpSpec, ...] = (
    OpSpec("WKV4", "wkv4", "rrwkv_trt.export.ops.wkv4", "Wkv4"),
    OpSpec("WKV4Medium", "wkv4_medium", "rrwkv_trt.export.ops.wkv4_medium", "Wkv4Medium"),
    OpSpec("MatMulW8", "matmul_w8", "rrwkv_trt.export.ops.matmul_w8", "MatMulW8"),
    OpSpec("MatMulW4", "matmul_w4", "rrwkv_trt.export.ops.matmul_w4", "MatMulW4"),
    OpSpec("MatMulWF16", "matmul_wf16", "rrwkv_trt.export.ops.matmul_wf16", "MatMulWF16"),
    OpSpec("GatedOuterScan", "gated_outer_scan", "rrwkv_trt.export.ops.gated_outer_scan", "GatedOuterScan"),
    OpSpec("ContinuousGaussianAttention", "continuous_gaussian_attention",
           "rrwkv_trt.export.ops.continuous_gaussian_attention", "ContinuousGaussianAttention"),
    OpSpec("LTMUpdate", "ltm_update", "rrwkv_trt.export.ops.ltm_update", "LtmUpdate"),
)
OP_NAMES: tuple[str, ...] = tuple(op.name for op in OPS)


def op_spec(name: str) -> OpSpec:
    """The registry entry of op_type `name`; KeyError naming the known ops otherwise."""
    for op in OPS:
        if op.name == name:
            return op
    raise KeyError(f"no rrwkv op {name!r}; the registry has {list(OP_NAMES)}")
