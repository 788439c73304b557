"""The TensorRT plugins' host side inside a real NVIDIA builder, on the CPU (docs/toolchain.md §10,
docs/conventions.md §4.5).

TensorRT-RTX parses one-node rrwkv graphs (no FunctionProto) into our IPluginV3 plugins and builds serialised SM86
engines: createPlugin with the node's attributes, getOutputDataTypes, getOutputShapes (real IExprBuilder),
supportsFormatCombination, configurePlugin (profile min/max), getWorkspaceSize, getFieldsToSerialize. Nothing is
deserialised or run (no GPU). TensorRT ignores the ONNX-declared output shapes, so every output is checked here
against the op contract (plugins/<op>/spec.yaml). pluginHarness.cpp covers what the Python bindings cannot reach.
MatMulW8's int8 weight (MatMulWF16's fp16 weight) reaches the plugin both as an initializer (a Constant layer, the
exported form) and as a graph input, in this strongly typed network, with no Q/DQ (or Cast) around it.
"""
from __future__ import annotations

import subprocess

import pytest

import trt_rtx_support as rtx
from plugin_ops import registry
from trt_rtx_support import Case, W4Case, W8Case, WF16Case

pytestmark = pytest.mark.skipif(rtx.skip_reason() is not None, reason=str(rtx.skip_reason()))

OPS = registry().OP_NAMES


@pytest.fixture(scope="module")
def trt():
    import tensorrt_rtx

    rtx.load_plugins(tensorrt_rtx)
    return tensorrt_rtx


def expected_outputs(trt, case: Case) -> list[tuple]:
    """[(name, shape, dtype)] of the op contract: the first output (y [B,T,C], o [B,T,H,V]) in the activation dtype,
    the state f32; -1 where dynamic."""
    y_type = trt.DataType.HALF if case.act == "float16" else trt.DataType.FLOAT
    shape = lambda axes: tuple(-1 if d in ("B", "T") else d for d in case.dims(axes))  # noqa: E731
    return [(name, shape(axes), y_type if i == 0 else trt.DataType.FLOAT)
            for i, (name, axes) in enumerate(rtx.op_outputs(case.op))]


def test_registry_resolves_creators(trt):
    reg = trt.get_plugin_registry()
    fields = {"WKV4": [("plugin_namespace", trt.PluginFieldType.CHAR), ("plugin_version", trt.PluginFieldType.CHAR)],
              "WKV4Medium": [("s", trt.PluginFieldType.INT32), ("medium_decays", trt.PluginFieldType.INT32),
                             ("plugin_namespace", trt.PluginFieldType.CHAR),
                             ("plugin_version", trt.PluginFieldType.CHAR)],
              "MatMulW8": [("N", trt.PluginFieldType.INT32), ("block_size", trt.PluginFieldType.INT32),
                           ("plugin_namespace", trt.PluginFieldType.CHAR),
                           ("plugin_version", trt.PluginFieldType.CHAR)],
              "MatMulW4": [("N", trt.PluginFieldType.INT32), ("block_size", trt.PluginFieldType.INT32),
                           ("plugin_namespace", trt.PluginFieldType.CHAR),
                           ("plugin_version", trt.PluginFieldType.CHAR)],
              "MatMulWF16": [("N", trt.PluginFieldType.INT32), ("plugin_namespace", trt.PluginFieldType.CHAR),
                             ("plugin_version", trt.PluginFieldType.CHAR)],
              "GatedOuterScan": [("scale", trt.PluginFieldType.FLOAT32), ("chunk_size", trt.PluginFieldType.INT32),
                                 ("plugin_namespace", trt.PluginFieldType.CHAR),
                                 ("plugin_version", trt.PluginFieldType.CHAR)],
              "ContinuousGaussianAttention": [("sigma2_min", trt.PluginFieldType.FLOAT32),
                                              ("scale", trt.PluginFieldType.FLOAT32),
                                              ("plugin_namespace", trt.PluginFieldType.CHAR),
                                              ("plugin_version", trt.PluginFieldType.CHAR)],
              "LTMUpdate": [("sticky", trt.PluginFieldType.INT32), ("plugin_namespace", trt.PluginFieldType.CHAR),
                            ("plugin_version", trt.PluginFieldType.CHAR)]}
    for op in OPS:
        creator = reg.get_creator(op, "1", "rrwkv")
        assert creator is not None, f"{op} v1 in namespace rrwkv not registered by {rtx.LIBRARY}"
        assert (creator.name, creator.plugin_version, creator.plugin_namespace) == (op, "1", "rrwkv")
        assert [(f.name, f.type) for f in creator.field_names] == fields[op]


BUILD_CASES = [
    *[Case("WKV4", act=act, C=C, dynamic=dyn)
      for act in ("float32", "float16") for dyn in (False, True) for C in (1, 33, 500)],
    *[Case("WKV4Medium", act=act, C=C, dynamic=dyn, attrs=attrs)
      for act in ("float32", "float16") for dyn in (False, True)
      for C, attrs in ((1, {"s": 1}), (33, {"s": 5, "medium_decays": 1}), (500, {"s": 16, "medium_decays": 0}))],
    *[Case("GatedOuterScan", act=act, H=H, K=K, V=V, dynamic=dyn, attrs=attrs)
      for act in ("float32", "float16") for dyn in (False, True)
      for (H, K, V), attrs in (((1, 1, 1), {"scale": 1.0}), ((3, 5, 7), {"scale": 0.5, "chunk_size": 1}),
                               ((2, 128, 128), {"scale": 0.0883883, "chunk_size": 64}), ((1, 1100, 9), {"scale": 2.0}))],
    *[Case("ContinuousGaussianAttention", act=act, H=H, N=N, D=D, dynamic=dyn,
           attrs={"sigma2_min": floor, "scale": D ** -0.5})
      for act in ("float32", "float16") for dyn in (False, True)
      for (H, N, D), floor in (((1, 1, 1), 1e-6), ((3, 11, 6), 1e-4), ((8, 512, 64), 1e-4))],
    # LTMUpdate: N basis, D = e, K = L, V = M, H histogram bins
    *[Case("LTMUpdate", N=N, D=D, K=K, V=V, H=H, dynamic=dyn, attrs=attrs)
      for dyn in (False, True)
      for (N, D, K, V, H), attrs in (((1, 1, 1, 1, 1), {}), ((11, 6, 5, 7, 3), {"sticky": 1}),
                                     ((512, 256, 512, 512, 128), {"sticky": 0}))],
]


def _case_id(c: Case) -> str:
    attrs = "".join(f"-{k}{v}" for k, v in c.attrs.items())
    return f"{c.op}-{c.act}-{'dyn' if c.dynamic else 'static'}-{c.static_sizes()}{attrs}"


@pytest.mark.parametrize("case", BUILD_CASES, ids=_case_id)
def test_parse_and_build_follow_contract(trt, case):
    logger = rtx.recording_logger(trt)
    builder, network, errors = rtx.parse(trt, logger, case)
    assert not errors, errors
    assert network.num_layers == 1 and network.get_layer(0).type == trt.LayerType.PLUGIN_V3, \
        "the rrwkv node did not become a plugin layer"
    layer = network.get_layer(0)
    layer.__class__ = trt.IPluginV3Layer
    core = layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
    assert (core.plugin_name, core.plugin_namespace, core.plugin_version) == (case.op, "rrwkv", "1")
    outputs = [network.get_output(i) for i in range(network.num_outputs)]
    assert [(o.name, tuple(o.shape), o.dtype) for o in outputs] == expected_outputs(trt, case)
    plan = rtx.build(trt, builder, network, case)
    assert plan is not None and plan.nbytes > 0, logger.errors()
    assert not logger.errors(), logger.errors()


# x [*lead, K] with rank 1..3, odd K and N, every block-size bound, the 169M projections; weights as initializers
# (the exported form) and as graph inputs; static and dynamic leading dims.
W8_BUILD_CASES = [
    W8Case(K=K, N=N, block_size=bs, lead=lead, dynamic=dyn, weights=weights)
    for K, N, bs, lead in ((130, 65, 32, (2, 5)), (5, 1, 2, (3,)), (768, 3072, 128, (1, 1)), (3072, 768, 256, ()),
                           (768, 200, 128, (7,)))
    for dyn in ((False, True) if lead else (False,)) for weights in ("initializer", "input")
]


def _w8_id(c: W8Case) -> str:
    return (f"K{c.K}-N{c.N}-bs{c.block_size}-x{'x'.join(map(str, c.lead)) or 'vec'}-"
            f"{'dyn' if c.dynamic else 'static'}-{c.weights}")


@pytest.mark.parametrize("case", W8_BUILD_CASES, ids=_w8_id)
def test_matmul_w8_parse_and_build_follow_contract(trt, case):
    # int8 [G, Kpad/2, 64, 2]
    check_block_quantized_plugin(trt, case, -(-case.N // 64) * 64 * -(-case.K // case.block_size) * case.block_size,
                                 "int8")


# MatMulW4: the shapes of MatMulW8's cases; the packed int4 weight (int8 bytes [G, Kpad/2, 64]) as an initializer (the
# exported form) and as a graph input.
W4_BUILD_CASES = [W4Case(K=c.K, N=c.N, block_size=c.block_size, lead=c.lead, dynamic=c.dynamic, weights=c.weights)
                  for c in W8_BUILD_CASES]


@pytest.mark.parametrize("case", W4_BUILD_CASES, ids=_w8_id)
def test_matmul_w4_parse_and_build_follow_contract(trt, case):
    # int8 bytes [G, Kpad/2, 64]
    check_block_quantized_plugin(trt, case, -(-case.N // 64) * 32 * -(-case.K // case.block_size) * case.block_size,
                                 "int4")


def check_block_quantized_plugin(trt, case, w_bytes: int, fmt: str) -> None:
    """MatMulW8's or MatMulW4's `case` parses into one plugin layer (fed by the weight constants where they are
    initializers) with its input and output contract, builds, and the engine holds the `w_bytes` of packed weight."""
    logger = rtx.recording_logger(trt)
    builder, network, errors = rtx.parse(trt, logger, case)
    assert not errors, errors
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    constants = 2 if case.weights == "initializer" else 0
    assert [la.type for la in layers] == [trt.LayerType.CONSTANT] * constants + [trt.LayerType.PLUGIN_V3], \
        "the rrwkv node did not become one plugin layer fed by the weight constants"
    plugin = layers[-1]
    assert [plugin.get_input(i).dtype for i in range(3)] == [trt.DataType.FLOAT, trt.DataType.INT8,
                                                            trt.DataType.FLOAT]
    y = network.get_output(0)
    lead = tuple(-1 if case.dynamic else d for d in case.lead)
    assert (network.num_outputs, y.name, tuple(y.shape), y.dtype) == (1, "y", (*lead, case.N), trt.DataType.FLOAT)
    plan = rtx.build(trt, builder, network, case)
    assert plan is not None and plan.nbytes > 0, logger.errors()
    assert not logger.errors(), logger.errors()
    if case.weights == "initializer":
        assert plan.nbytes > w_bytes, f"the engine does not hold the {fmt} weight"


# MatMulWF16: x [*lead, K] with rank 1..3, odd K and N, the 169M projections; the fp16 weight as an initializer (the
# exported form) and as a graph input; static and dynamic leading dims.
WF16_BUILD_CASES = [
    WF16Case(K=K, N=N, lead=lead, dynamic=dyn, weights=weights)
    for K, N, lead in ((130, 65, (2, 5)), (5, 1, (3,)), (768, 3072, (1, 1)), (3072, 768, ()), (257, 200, (7,)))
    for dyn in ((False, True) if lead else (False,)) for weights in ("initializer", "input")
]


def _wf16_id(c: WF16Case) -> str:
    return f"K{c.K}-N{c.N}-x{'x'.join(map(str, c.lead)) or 'vec'}-{'dyn' if c.dynamic else 'static'}-{c.weights}"


@pytest.mark.parametrize("case", WF16_BUILD_CASES, ids=_wf16_id)
def test_matmul_wf16_parse_and_build_follow_contract(trt, case):
    logger = rtx.recording_logger(trt)
    builder, network, errors = rtx.parse(trt, logger, case)
    assert not errors, errors
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    constants = 1 if case.weights == "initializer" else 0
    assert [la.type for la in layers] == [trt.LayerType.CONSTANT] * constants + [trt.LayerType.PLUGIN_V3], \
        "the rrwkv node did not become one plugin layer fed by the weight constant"
    plugin = layers[-1]
    assert [plugin.get_input(i).dtype for i in range(2)] == [trt.DataType.FLOAT, trt.DataType.HALF]
    y = network.get_output(0)
    lead = tuple(-1 if case.dynamic else d for d in case.lead)
    assert (network.num_outputs, y.name, tuple(y.shape), y.dtype) == (1, "y", (*lead, case.N), trt.DataType.FLOAT)
    plan = rtx.build(trt, builder, network, case)
    assert plan is not None and plan.nbytes > 0, logger.errors()
    assert not logger.errors(), logger.errors()
    if case.weights == "initializer":
        assert plan.nbytes > 2 * 64 * -(-case.N // 64) * case.K, "the engine does not hold the fp16 weight"


GOS = {"scale": 0.5}  # GatedOuterScan's required attribute
CGA = {"sigma2_min": 1e-4, "scale": 0.5}  # ContinuousGaussianAttention's required attributes
# (id, case, TensorRT's report of the failing plugin hook, the plugin's own message).
NEGATIVE = [
    ("C-k-vs-w", Case("WKV4", overrides={"w": ("float32", [17]), "u": ("float32", [17])}),
     "output shape computation failed", "WKV4: dimension C of input 'k' is 16 but 17 in input 'w'"),
    ("C-aa-dynamic", Case("WKV4", dynamic=True, overrides={"aa": ("float32", ["B", 8])}),
     "output shape computation failed", "WKV4: dimension C of input 'aa' is 8 but 16 in input 'w'"),
    ("B-aa-vs-k", Case("WKV4", overrides={"aa": ("float32", [3, 16])}),
     "output shape computation failed", "WKV4: dimension B of input 'aa' is 3 but 2 in input 'k'"),
    ("rank-k", Case("WKV4", overrides={"k": ("float32", [2, 16]), "v": ("float32", [2, 16])}),
     "output shape computation failed", "WKV4: input 2 'k' must have rank 3 [B,T,C], got rank 2"),
    ("rank-aa", Case("WKV4Medium", attrs={"s": 2}, overrides={"aa": ("float32", [2, 16, 1])}),
     "output shape computation failed", "WKV4Medium: input 6 'aa' must have rank 2 [B,C], got rank 3"),
    ("C-km", Case("WKV4Medium", attrs={"s": 2}, overrides={"k_m": ("float32", [2, 3, 15])}),
     "output shape computation failed", "WKV4Medium: dimension C of input 'k_m' is 15 but 16 in input 'w'"),
    ("int32-k", Case("WKV4", act="int32"),
     "getOutputDataTypes", "WKV4: input 2 'k' must be float32 or float16, got int32"),
    ("half-v-float-k", Case("WKV4", overrides={"v": ("float16", [2, 5, 16])}),
     "getOutputDataTypes", "WKV4: input 3 'v (same dtype as k)' must be float32, got float16"),
    ("half-w", Case("WKV4", act="float16", overrides={"w": ("float16", [16])}),
     "getOutputDataTypes", "WKV4: input 0 'w' must be float32, got float16"),
    ("int32-pos0", Case("WKV4Medium", attrs={"s": 2}, overrides={"pos0": ("int32", [2])}),
     "getOutputDataTypes", "WKV4Medium: input 9 'pos0' must be int64, got int32"),
    ("s0", Case("WKV4Medium", attrs={"s": 0}),
     "Could not create the plugin", "WKV4Medium: attribute 's' (medium interval) must be >= 1, got 0"),
    ("medium_decays2", Case("WKV4Medium", attrs={"s": 2, "medium_decays": 2}),
     "Could not create the plugin", "WKV4Medium: attribute 'medium_decays' must be 0 or 1, got 2"),
    ("missing-s", Case("WKV4Medium"),
     "Could not create the plugin", "WKV4Medium: required attribute 's' (medium interval, INT >= 1) is missing"),
    # GatedOuterScan with B = 2, T = 5, H = 3, K = 5, V = 7.
    ("gos-K-lb", Case("GatedOuterScan", attrs=GOS, overrides={"lb": ("float32", [3, 6])}),
     "output shape computation failed", "GatedOuterScan: dimension K of input 'lb' is 6 but 5 in input 'q'"),
    ("gos-H-v", Case("GatedOuterScan", attrs=GOS, overrides={"v": ("float32", [2, 5, 4, 7])}),
     "output shape computation failed", "GatedOuterScan: dimension H of input 'v' is 4 but 3 in input 'q'"),
    ("gos-V-S0", Case("GatedOuterScan", attrs=GOS, overrides={"S0": ("float32", [2, 3, 5, 8])}),
     "output shape computation failed", "GatedOuterScan: dimension V of input 'S0' is 8 but 7 in input 'v'"),
    ("gos-rank-q", Case("GatedOuterScan", attrs=GOS, overrides={"q": ("float32", [2, 5, 15]),
                                                                 "f": ("float32", [2, 5, 15])}),
     "output shape computation failed", "GatedOuterScan: input 0 'q' must have rank 4 [B,T,H,K], got rank 3"),
    ("gos-rank-S0", Case("GatedOuterScan", attrs=GOS, overrides={"S0": ("float32", [2, 15, 7])}),
     "output shape computation failed", "GatedOuterScan: input 4 'S0' must have rank 4 [B,H,K,V], got rank 3"),
    ("gos-int32-q", Case("GatedOuterScan", act="int32", attrs=GOS),
     "getOutputDataTypes", "GatedOuterScan: input 0 'q' must be float32 or float16, got int32"),
    ("gos-half-f-float-q", Case("GatedOuterScan", attrs=GOS, overrides={"f": ("float16", [2, 5, 3, 5])}),
     "getOutputDataTypes", "GatedOuterScan: input 1 'f (same dtype as q)' must be float32, got float16"),
    ("gos-float-v-half-q", Case("GatedOuterScan", act="float16", attrs=GOS, overrides={"v": ("float32", [2, 5, 3, 7])}),
     "getOutputDataTypes", "GatedOuterScan: input 3 'v (same dtype as q)' must be float16, got float32"),
    ("gos-half-lb", Case("GatedOuterScan", act="float16", attrs=GOS, overrides={"lb": ("float16", [3, 5])}),
     "getOutputDataTypes", "GatedOuterScan: input 2 'lb' must be float32, got float16"),
    ("gos-half-S0", Case("GatedOuterScan", act="float16", attrs=GOS, overrides={"S0": ("float16", [2, 3, 5, 7])}),
     "getOutputDataTypes", "GatedOuterScan: input 4 'S0' must be float32, got float16"),
    ("gos-missing-scale", Case("GatedOuterScan", attrs={"chunk_size": 8}), "Could not create the plugin",
     "GatedOuterScan: required attribute 'scale' (query scale, FLOAT, finite and > 0) is missing"),
    ("gos-scale0", Case("GatedOuterScan", attrs={"scale": 0.0}),
     "Could not create the plugin", "GatedOuterScan: attribute 'scale' must be finite and > 0, got 0"),
    ("gos-scale-neg", Case("GatedOuterScan", attrs={"scale": -0.25}),
     "Could not create the plugin", "GatedOuterScan: attribute 'scale' must be finite and > 0, got -0.25"),
    ("gos-scale-nan", Case("GatedOuterScan", attrs={"scale": float("nan")}),
     "Could not create the plugin", "GatedOuterScan: attribute 'scale' must be finite and > 0, got nan"),
    ("gos-scale-inf", Case("GatedOuterScan", attrs={"scale": float("inf")}),
     "Could not create the plugin", "GatedOuterScan: attribute 'scale' must be finite and > 0, got inf"),
    ("gos-scale-int", Case("GatedOuterScan", attrs={"scale": 1}), "Could not create the plugin",
     "GatedOuterScan: attribute 'scale' must be one kFLOAT32 value (ONNX FLOAT), got kINT32 x 1"),
    ("gos-chunk0", Case("GatedOuterScan", attrs={"scale": 0.5, "chunk_size": 0}),
     "Could not create the plugin", "GatedOuterScan: attribute 'chunk_size' must be >= 1, got 0"),
    # ContinuousGaussianAttention with B = 2, H = 3, T = 5, N = 11, D = 6.
    ("cga-N-K-V", Case("ContinuousGaussianAttention", attrs=CGA, overrides={"V": ("float32", [2, 3, 12, 6])}),
     "output shape computation failed",
     "ContinuousGaussianAttention: dimension N of input 'V' is 12 but 11 in input 'K'"),
    ("cga-N-w_mu", Case("ContinuousGaussianAttention", attrs=CGA, overrides={"w_mu": ("float32", [10])}),
     "output shape computation failed",
     "ContinuousGaussianAttention: dimension N of input 'w_mu' is 10 but 11 in input 'K'"),
    ("cga-D-K", Case("ContinuousGaussianAttention", attrs=CGA, overrides={"K": ("float32", [2, 3, 11, 7])}),
     "output shape computation failed",
     "ContinuousGaussianAttention: dimension D of input 'K' is 7 but 6 in input 'q'"),
    ("cga-rank-q", Case("ContinuousGaussianAttention", attrs=CGA, overrides={"q": ("float32", [2, 3, 30])}),
     "output shape computation failed",
     "ContinuousGaussianAttention: input 0 'q' must have rank 4 [B,H,T,D], got rank 3"),
    ("cga-half-K-float-q", Case("ContinuousGaussianAttention", attrs=CGA,
                                overrides={"K": ("float16", [2, 3, 11, 6])}),
     "getOutputDataTypes", "ContinuousGaussianAttention: input 1 'K (same dtype as q)' must be float32, got float16"),
    ("cga-half-basis", Case("ContinuousGaussianAttention", act="float16", attrs=CGA,
                            overrides={"basis_sigma": ("float16", [11])}),
     "getOutputDataTypes", "ContinuousGaussianAttention: input 6 'basis_sigma' must be float32, got float16"),
    ("cga-missing-floor", Case("ContinuousGaussianAttention", attrs={"scale": 0.5}), "Could not create the plugin",
     "ContinuousGaussianAttention: required attribute 'sigma2_min' (variance floor, FLOAT, finite and > 0) is missing"),
    ("cga-floor0", Case("ContinuousGaussianAttention", attrs={"sigma2_min": 0.0, "scale": 0.5}),
     "Could not create the plugin",
     "ContinuousGaussianAttention: attribute 'sigma2_min' must be finite and > 0, got 0"),
    ("cga-scale-int", Case("ContinuousGaussianAttention", attrs={"sigma2_min": 1e-4, "scale": 1}),
     "Could not create the plugin",
     "ContinuousGaussianAttention: attribute 'scale' must be one kFLOAT32 value (ONNX FLOAT), got kINT32 x 1"),
    # LTMUpdate with B = 2, N = 11, e = D = 6, L = K = 5, M = V = 7, NB = H = 3.
    ("ltm-G_inf-rows", Case("LTMUpdate", overrides={"G_inf": ("float32", [13, 11])}), "output shape computation failed",
     "LTMUpdate: input 4 'G_inf' has 13 rows, expected M + L = 7 + 5 (S_samp's rows + X_new's L)"),
    ("ltm-mode-float", Case("LTMUpdate", overrides={"mode": ("float32", [2])}), "getOutputDataTypes",
     "LTMUpdate: input 2 'mode' must be int64, got float32"),
    ("ltm-sticky2", Case("LTMUpdate", attrs={"sticky": 2}), "Could not create the plugin",
     "LTMUpdate: attribute 'sticky' must be 0 or 1, got 2"),
    # MatMulW8 with K = 130, N = 65, block_size = 32: G = 2, NB = 5, Kpad / 2 = 80.
    ("w8-G", W8Case(overrides={"w": ("int8", [1, 80, 64, 2]), "scale": ("float32", [1, 5, 64])}),
     "output shape computation failed",
     "MatMulW8: input 1 'w' has dim 0 = 1, expected 2 (G = ceil(N / 64) for N = 65)"),
    ("w8-P", W8Case(overrides={"w": ("int8", [2, 65, 64, 2])}), "output shape computation failed",
     "MatMulW8: input 1 'w' has dim 1 = 65, expected 80 (Kpad / 2 = NB * block_size / 2 for x's last dim K = 130"),
    ("w8-NB", W8Case(overrides={"scale": ("float32", [2, 4, 64])}), "output shape computation failed",
     "MatMulW8: input 2 'scale' has dim 1 = 4, expected 5 (NB = ceil(K / block_size)"),
    ("w8-pair", W8Case(overrides={"w": ("int8", [2, 80, 64, 1])}), "output shape computation failed",
     "MatMulW8: input 1 'w' has dim 3 = 1, expected 2 (the rows of a pair)"),
    ("w8-G-w-vs-scale", W8Case(overrides={"scale": ("float32", [3, 5, 64])}), "output shape computation failed",
     "MatMulW8: dimension G of input 'scale' is 3 but 2 in input 'w'"),
    ("w8-K-in-profile", W8Case(lead=(2,), dynamic=True, x_K=100, overrides={"x": ("float32", ["B", "K"])}),
     "output shape computation failed", "MatMulW8: input 1 'w' has dim 1 = 80, expected 64"),
    ("w8-x-scalar", W8Case(overrides={"x": ("float32", [])}),
     "output shape computation failed", "MatMulW8: input 0 'x' must have rank >= 1 [...,K], got rank 0"),
    ("w8-scale-rank", W8Case(overrides={"scale": ("float32", [2, 320])}),
     "output shape computation failed", "MatMulW8: input 2 'scale' must have rank 3 [G,B,L], got rank 2"),
    ("w8-w-float", W8Case(overrides={"w": ("float32", [2, 80, 64, 2])}),
     "getOutputDataTypes", "MatMulW8: input 1 'w' must be int8, got float32"),
    ("w8-w-uint8", W8Case(weights="input", overrides={"w": ("uint8", [2, 80, 64, 2])}),
     "getOutputDataTypes", "MatMulW8: input 1 'w' must be int8, got uint8"),
    ("w8-x-half", W8Case(overrides={"x": ("float16", [2, 5, 130])}),
     "getOutputDataTypes", "MatMulW8: input 0 'x' must be float32, got float16"),
    ("w8-missing-N", W8Case(attrs={"block_size": 32}),
     "Could not create the plugin", "MatMulW8: required attribute 'N' (output features, INT >= 1) is missing"),
    ("w8-N0", W8Case(attrs={"N": 0, "block_size": 32}),
     "Could not create the plugin", "MatMulW8: attribute 'N' (output features) must be >= 1, got 0"),
    ("w8-block-odd", W8Case(attrs={"N": 65, "block_size": 33}),
     "Could not create the plugin", "MatMulW8: attribute 'block_size' must be an even value in [2, 256], got 33"),
    ("w8-block-512", W8Case(attrs={"N": 65, "block_size": 512}),
     "Could not create the plugin", "MatMulW8: attribute 'block_size' must be an even value in [2, 256], got 512"),
    # MatMulW4 with K = 130, N = 65, block_size = 32: G = 2, NB = 5, Kpad / 2 = 80.
    ("w4-G", W4Case(overrides={"w": ("int8", [1, 80, 64]), "scale": ("float32", [1, 5, 64])}),
     "output shape computation failed",
     "MatMulW4: input 1 'w' has dim 0 = 1, expected 2 (G = ceil(N / 64) for N = 65)"),
    ("w4-P", W4Case(overrides={"w": ("int8", [2, 65, 64])}), "output shape computation failed",
     "MatMulW4: input 1 'w' has dim 1 = 65, expected 80 (Kpad / 2 = NB * block_size / 2 for x's last dim K = 130"),
    ("w4-bytes", W4Case(overrides={"w": ("int8", [2, 80, 32])}), "output shape computation failed",
     "MatMulW4: input 1 'w' has dim 2 = 32, expected 64 (the bytes of a row pair of a group)"),
    ("w4-w8-layout", W4Case(overrides={"w": ("int8", [2, 80, 64, 2])}), "output shape computation failed",
     "MatMulW4: input 1 'w' must have rank 3 [G,P,Y], got rank 4"),
    ("w4-NB", W4Case(overrides={"scale": ("float32", [2, 4, 64])}), "output shape computation failed",
     "MatMulW4: input 2 'scale' has dim 1 = 4, expected 5 (NB = ceil(K / block_size)"),
    ("w4-w-uint8", W4Case(weights="input", overrides={"w": ("uint8", [2, 80, 64])}),
     "getOutputDataTypes", "MatMulW4: input 1 'w' must be int8, got uint8"),
    ("w4-missing-N", W4Case(attrs={"block_size": 32}),
     "Could not create the plugin", "MatMulW4: required attribute 'N' (output features, INT >= 1) is missing"),
    ("w4-block-odd", W4Case(attrs={"N": 65, "block_size": 33}),
     "Could not create the plugin", "MatMulW4: attribute 'block_size' must be an even value in [2, 256], got 33"),
    # MatMulWF16 with K = 130, N = 65: G = 2.
    ("wf16-G", WF16Case(overrides={"w": ("float16", [1, 130, 64])}), "output shape computation failed",
     "MatMulWF16: input 1 'w' has dim 0 = 1, expected 2 (G = ceil(N / 64) for N = 65)"),
    ("wf16-lanes", WF16Case(overrides={"w": ("float16", [2, 130, 32])}), "output shape computation failed",
     "MatMulWF16: input 1 'w' has dim 2 = 32, expected 64 (the columns of a group)"),
    ("wf16-K", WF16Case(x_K=100), "output shape computation failed",
     "MatMulWF16: dimension K of input 'w' is 130 but 100 in input 'x'"),
    ("wf16-w-rank", WF16Case(overrides={"w": ("float16", [2, 8320])}), "output shape computation failed",
     "MatMulWF16: input 1 'w' must have rank 3 [G,K,L], got rank 2"),
    ("wf16-x-scalar", WF16Case(overrides={"x": ("float32", [])}), "output shape computation failed",
     "MatMulWF16: input 0 'x' must have rank >= 1 [...,K], got rank 0"),
    ("wf16-w-float", WF16Case(overrides={"w": ("float32", [2, 130, 64])}), "getOutputDataTypes",
     "MatMulWF16: input 1 'w' must be float16, got float32"),
    ("wf16-x-half", WF16Case(overrides={"x": ("float16", [2, 5, 130])}), "getOutputDataTypes",
     "MatMulWF16: input 0 'x' must be float32, got float16"),
    ("wf16-missing-N", WF16Case(attrs={}), "Could not create the plugin",
     "MatMulWF16: required attribute 'N' (output features, INT >= 1) is missing"),
    ("wf16-N0", WF16Case(attrs={"N": 0}), "Could not create the plugin",
     "MatMulWF16: attribute 'N' (output features) must be >= 1, got 0"),
]


@pytest.mark.parametrize("case,trt_text,plugin_text", [n[1:] for n in NEGATIVE], ids=[n[0] for n in NEGATIVE])
def test_invalid_graph_fails_with_plugin_error(trt, capfd, case, trt_text, plugin_text):
    logger = rtx.recording_logger(trt)
    builder, network, errors = rtx.parse(trt, logger, case)
    plan = None if errors else rtx.build(trt, builder, network, case)
    assert errors or plan is None, f"{case} was accepted"
    assert trt_text in "\n".join(errors) + logger.errors()
    # TensorRT-RTX's ILoggerFinder::findLogger() returns null, so the plugin's messages go to stderr ("[rrwkv] ...");
    # under full TensorRT they reach the builder's logger (the harness checks that route).
    captured = capfd.readouterr().err + "\n".join(m for _, m in logger.messages)
    assert plugin_text in captured, captured[-2000:]


def test_python_creator_parses_fields(trt, capfd):
    """INT fields built in Python arrive as kINT32 and are range-checked. (clone() and get_fields_to_serialize()
    return None for C++ plugins in these bindings: the harness test covers them.)"""
    import numpy as np

    creator = trt.get_plugin_registry().get_creator("WKV4Medium", "1", "rrwkv")
    i32 = lambda name, v: trt.PluginField(name, np.array([v], np.int32), trt.PluginFieldType.INT32)  # noqa: E731
    plugin = creator.create_plugin("m", trt.PluginFieldCollection([i32("s", 5), i32("medium_decays", 1)]),
                                   trt.TensorRTPhase.BUILD)
    assert plugin is not None
    core = plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
    assert (core.plugin_name, core.plugin_namespace, core.plugin_version) == ("WKV4Medium", "rrwkv", "1")
    bad = creator.create_plugin("m", trt.PluginFieldCollection([i32("s", 5), i32("medium_decays", 3)]),
                                trt.TensorRTPhase.BUILD)
    assert bad is None
    assert "'medium_decays' must be 0 or 1, got 3" in capfd.readouterr().err


def test_engine_serialises_attributes(trt):
    """getFieldsToSerialize reaches the plan: engines for s=5 and s=7 differ exactly where the value is stored
    (the plan layout is undocumented, so only the differing bytes are compared)."""
    plans = {}
    for s in (5, 7):
        case = Case("WKV4Medium", attrs={"s": s, "medium_decays": 1})
        logger = rtx.recording_logger(trt)
        builder, network, errors = rtx.parse(trt, logger, case)
        assert not errors, errors
        plans[s] = bytes(rtx.build(trt, builder, network, case))
    assert len(plans[5]) == len(plans[7])
    diff = {(a, b) for a, b in zip(plans[5], plans[7]) if a != b}
    assert diff == {(5, 7)}, f"plans differ in more than the serialised s: {sorted(diff)[:8]}"
    assert b"medium_decays" in plans[5] and b"plugin_namespace" in plans[5]


def test_engine_serialises_float_attribute(trt):
    """GatedOuterScan's FLOAT field reaches the plan as kFLOAT32: engines for scale 0.5 (bytes 00 00 00 3f) and 0.25
    (00 00 80 3e) differ exactly in those two bytes."""
    plans = {}
    for scale in (0.5, 0.25):
        case = Case("GatedOuterScan", attrs={"scale": scale, "chunk_size": 16})
        logger = rtx.recording_logger(trt)
        builder, network, errors = rtx.parse(trt, logger, case)
        assert not errors, errors
        plans[scale] = bytes(rtx.build(trt, builder, network, case))
    assert len(plans[0.5]) == len(plans[0.25])
    diff = {(a, b) for a, b in zip(plans[0.5], plans[0.25]) if a != b}
    assert diff == {(0x00, 0x80), (0x3F, 0x3E)}, f"plans differ in more than the serialised scale: {sorted(diff)[:8]}"
    assert b"chunk_size" in plans[0.5] and b"plugin_namespace" in plans[0.5]


def test_field_round_trip_and_formats_harness(trt):
    """getFieldsToSerialize -> createPlugin round trips, clone/attachToContext, createPlugin rejections logged
    through setLoggerFinder's logger, and supportsFormatCombination per position. The RTX Python bindings return
    None from get_fields_to_serialize for C++ plugins, hence a small C++ driver of the same library."""
    proc = subprocess.run([str(rtx.harness()), str(rtx.LIBRARY), *OPS], capture_output=True, text=True, timeout=60)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    for check in ("creators", "WKV4Medium.s5.recreate", "WKV4Medium.defaults.fields", "WKV4.noFields.recreate",
                  "WKV4Medium.reject.missingS", "WKV4Medium.reject.sInt64", "WKV4Medium.formats.reject.pos0Int32",
                  "WKV4.formats.float16", "MatMulW8.n65.recreate", "MatMulW8.defaults.fields",
                  "MatMulW8.reject.blockSize3", "MatMulW8.formats.int8Weight", "MatMulW8.formats.reject.wUint8",
                  "MatMulW8.workspace", "MatMulW8.configure.rejectK", "MatMulW8.onShapeChange.rejectK",
                  *(f"{op}.reject.{what}" for op in ("WKV4", "WKV4Medium", "MatMulW8", "GatedOuterScan")
                    for what in ("nullFields", "negativeNbFields", "nullName", "nullStringData")),
                  "WKV4Medium.reject.nullIntData", "MatMulW8.reject.nHuge", "MatMulW8.reject.nInt32Max",
                  "GatedOuterScan.fieldNames", "GatedOuterScan.scale.recreate", "GatedOuterScan.scale.fields",
                  "GatedOuterScan.defaults.fields", "GatedOuterScan.reject.missingScale",
                  "GatedOuterScan.reject.scaleNaN", "GatedOuterScan.reject.scaleInt32",
                  "GatedOuterScan.reject.nullFloatData", "GatedOuterScan.formats.float16",
                  "GatedOuterScan.formats.reject.lbHalf", "GatedOuterScan.formats.reject.vFloat",
                  "GatedOuterScan.configure", "GatedOuterScan.configure.rejectV",
                  "GatedOuterScan.onShapeChange.rejectT",
                  "ContinuousGaussianAttention.fieldNames", "ContinuousGaussianAttention.attrs.recreate",
                  "ContinuousGaussianAttention.reject.missingSigma2Min", "ContinuousGaussianAttention.reject.floor0",
                  "ContinuousGaussianAttention.reject.floorInt32", "ContinuousGaussianAttention.formats.float16",
                  "ContinuousGaussianAttention.formats.reject.kFloat",
                  "ContinuousGaussianAttention.formats.reject.sigma2Half",
                  "MatMulWF16.fieldNames", "MatMulWF16.n65.recreate", "MatMulWF16.n65.attachToContext",
                  "MatMulWF16.reject.missingN", "MatMulWF16.reject.n0", "MatMulWF16.reject.nHuge",
                  "MatMulWF16.reject.nInt64", "MatMulWF16.reject.unknown", "MatMulWF16.formats.halfWeight",
                  "MatMulWF16.formats.nonlinear", "MatMulWF16.formats.reject.wFloat", "MatMulWF16.formats.reject.wBf16",
                  "MatMulWF16.formats.reject.xHalf", "MatMulWF16.formats.reject.yHalf", "MatMulWF16.configure",
                  "MatMulWF16.workspace", "MatMulWF16.configure.rejectG", "MatMulWF16.onShapeChange",
                  "MatMulWF16.onShapeChange.rejectG",
                  *(f"MatMulWF16.reject.{what}" for what in ("nullFields", "negativeNbFields", "nullName",
                                                             "nullStringData"))):
        assert f"PASS {check}\n" in report, report
