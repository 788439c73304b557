"""TensorRT-RTX as a CPU-only NVIDIA builder for the rrwkv plugins (docs/toolchain.md §10).

- `skip_reason()`: why the RTX tests cannot run here (no nvcc, no tensorrt_rtx), or None.
- `ensure_unversioned_lib()`: the libtensorrt_rtx.so -> libtensorrt_rtx.so.1 link the ONNX parser needs.
- `plugin_library()`: build/rtx/librrwkv_trt_plugins_dyn.so for sm_86 (RTX has no SM90), rebuilt when a source changes.
- `one_node_model()`: a one-node WKV4 / WKV4Medium / GatedOuterScan / ContinuousGaussianAttention ONNX graph (no
  FunctionProto) with static or symbolic B/T/Mmax;
  `W8Case` / `W4Case` / `WF16Case`: a one-node MatMulW8 / MatMulW4 / MatMulWF16 graph (`matmul_model()`) with its
  packed int8 / int4 (in int8 bytes) / fp16 weight as initializers (as exported) or graph inputs.
- `RecordingLogger`, `parse()` / `parse_model()`, `build()` / `build_profile()`: the builder calls, with every log
  message kept for assertions.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from plugin_ops import OPS_OUT, PLUGINS, REPO, files_of_op_folders, sources

RTX_DIR = REPO / "build" / "rtx"
LIBRARY = RTX_DIR / "librrwkv_trt_plugins_dyn.so"
RTX_ARCH = "86"  # TensorRT-RTX 1.7 targets SM75/80/86/89/120/121, not SM90
PLUGIN_ATTRS = {"plugin_namespace": "rrwkv", "plugin_version": "1"}
ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int8": TensorProto.INT8,
               "uint8": TensorProto.UINT8, "int32": TensorProto.INT32, "int64": TensorProto.INT64}


def skip_reason() -> str | None:
    """None when nvcc and tensorrt_rtx are both available, else the reason the tests skip."""
    if shutil.which("nvcc") is None:
        return "nvcc not on PATH: cannot build the plugin library for TensorRT-RTX"
    if importlib.util.find_spec("tensorrt_rtx") is None:
        return ("tensorrt_rtx not installed: pip install -e '.[dev]' "
                "(tensorrt-rtx-cu13==1.7.1.116, docs/toolchain.md §10)")
    return None


def ensure_unversioned_lib() -> None:
    """The RTX ONNX parser dlopens libtensorrt_rtx.so, which the wheel ships only as .so.1; without the link
    the process aborts when a plugin node is added. Idempotent."""
    import tensorrt_rtx_libs

    libdir = Path(tensorrt_rtx_libs.__file__).parent
    link = libdir / "libtensorrt_rtx.so"
    if not link.exists():
        if link.is_symlink():  # dangling
            link.unlink()
        link.symlink_to("libtensorrt_rtx.so.1")


def _trt_include() -> str:
    fetch = subprocess.run(["bash", str(PLUGINS / "fetch_trt_headers.sh")], cwd=REPO, check=True,
                           capture_output=True, text=True)
    return fetch.stdout.strip().splitlines()[-1]


def _sources() -> list[Path]:
    """The op folders' plugin and CUDA sources (plugins/<folder>/op.cmake) and the dynamic registration."""
    return sources("plugin") + sources("cuda") + [PLUGINS / "registerTrtDynamic.cpp"]


def plugin_library() -> Path:
    """Build (when missing or older than any plugins/ source, header or op.cmake) the loadLibrary variant of the
    plugin library for TensorRT-RTX: TensorRT 10.14 headers, sm_86, static cudart, no libnvinfer, no undefined
    symbols. The generated registration lists (rrwkvOps.inc, rrwkvPlugins.h) come from plugin_ops.OPS_OUT."""
    deps = (_sources() + files_of_op_folders()
            + [p for ext in ("h", "cuh", "inc") for p in (*PLUGINS.rglob(f"*.{ext}"), *OPS_OUT.glob(f"*.{ext}"))])
    if LIBRARY.exists() and LIBRARY.stat().st_mtime >= max(p.stat().st_mtime for p in deps):
        return LIBRARY
    trt_include = _trt_include()
    RTX_DIR.mkdir(parents=True, exist_ok=True)
    tmp = LIBRARY.with_suffix(".so.tmp")
    cmd = ["nvcc", "-std=c++17", "-O2", "-shared", "-Xcompiler", "-fPIC", "-I", str(PLUGINS), "-I", str(OPS_OUT),
           "-isystem", trt_include, "-gencode", f"arch=compute_{RTX_ARCH},code=sm_{RTX_ARCH}", "-cudart", "static",
           *map(str, _sources()), "-o", str(tmp), "-Xlinker", "--no-undefined"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building {LIBRARY} failed:\n{' '.join(cmd)}\n{proc.stderr}")
    os.replace(tmp, LIBRARY)
    return LIBRARY


# Per op: (input name, dtype key, axes); axes name dims "B", "T", "M" (dynamic when the case is) and "C", "H", "K",
# "V" (static). "act" is the activation dtype (k/v; q/f/v).
OP_INPUTS = {
    "WKV4": [("w", "f32", "C"), ("u", "f32", "C"), ("k", "act", "BTC"), ("v", "act", "BTC"),
             ("aa", "f32", "BC"), ("bb", "f32", "BC"), ("pp", "f32", "BC")],
    "WKV4Medium": [("w", "f32", "C"), ("u", "f32", "C"), ("k", "act", "BTC"), ("v", "act", "BTC"),
                   ("k_m", "f32", "BMC"), ("v_m", "f32", "BMC"), ("aa", "f32", "BC"), ("bb", "f32", "BC"),
                   ("pp", "f32", "BC"), ("pos0", "i64", "B")],
    "GatedOuterScan": [("q", "act", "BTHK"), ("f", "act", "BTHK"), ("lb", "f32", "HK"), ("v", "act", "BTHV"),
                       ("S0", "f32", "BHKV")],
    "ContinuousGaussianAttention": [("q", "act", "BHTD"), ("K", "act", "BHND"), ("V", "act", "BHND"),
                                    ("w_mu", "f32", "N"), ("w_sigma", "f32", "N"), ("basis_mu", "f32", "N"),
                                    ("basis_sigma", "f32", "N")],
    # LTMUpdate: e = D, L = K, M = V, G_inf's rows P = K + V, the histogram bins H
    "LTMUpdate": [("B_past", "f32", "BND"), ("X_new", "f32", "BKD"), ("mode", "i64", "B"), ("G", "f32", "KN"),
                  ("G_inf", "f32", "PN"), ("S_samp", "f32", "VN"), ("hist", "f32", "BH"), ("basis_mu", "f32", "N"),
                  ("basis_sigma", "f32", "N")],
}
OUTPUTS = [("y", "BTC"), ("aa_out", "BC"), ("bb_out", "BC"), ("pp_out", "BC")]
OP_OUTPUTS = {"GatedOuterScan": [("o", "BTHV"), ("S_out", "BHKV")],  # the others': OUTPUTS
              "ContinuousGaussianAttention": [("ctx", "BHTD"), ("mu", "BHT"), ("sigma2", "BHT")],
              "LTMUpdate": [("B_new", "BND")]}


def op_outputs(op: str) -> list[tuple[str, str]]:
    """[(output name, axes)] of `op`; the first output has the activation dtype, the others are f32."""
    return OP_OUTPUTS.get(op, OUTPUTS)


@dataclass
class Case:
    """One one-node graph: op, activation dtype, sizes; dynamic=True makes B, T (and M) symbolic.
    overrides: {input name: (dtype, shape)} to build invalid graphs."""
    op: str
    act: str = "float32"
    C: int = 16
    B: int = 2
    T: int = 5
    M: int = 3
    H: int = 3
    K: int = 5
    V: int = 7
    N: int = 11  # ContinuousGaussianAttention's basis functions; D its head dim
    D: int = 6
    dynamic: bool = False
    attrs: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)

    def dims(self, axes: str, static: bool = False) -> list:
        sizes = {"B": self.B, "T": self.T, "M": self.M, "C": self.C, "H": self.H, "K": self.K, "V": self.V,
                 "N": self.N, "D": self.D, "P": self.K + self.V}
        return [sizes[a] if (static or not self.dynamic or a not in "BTM") else a for a in axes]

    def static_sizes(self) -> str:
        """The op's static dims, e.g. "C16" or "H3K5V7" (for test ids)."""
        letters = dict.fromkeys(a for _, _, axes in OP_INPUTS[self.op] for a in axes if a not in "BTM")
        return "".join(f"{a}{self.dims(a, static=True)[0]}" for a in letters)

    def inputs(self) -> list[tuple[str, str, list]]:
        """[(name, dtype, shape)] with symbolic dims as strings."""
        dtype = {"f32": "float32", "i64": "int64", "act": self.act}
        out = []
        for name, kind, axes in OP_INPUTS[self.op]:
            out.append((name, *self.overrides.get(name, (dtype[kind], self.dims(axes)))))
        return out

    def model(self):
        return one_node_model(self)

    def profile(self) -> dict:
        """{input: (min, opt, max)} for a dynamic case: B 1..4, T 1..64, M 1..16."""
        if not self.dynamic:
            return {}
        lo, opt, hi = ({"B": 1, "T": 1, "M": 1}, {"B": 2, "T": 8, "M": 3}, {"B": 4, "T": 64, "M": 16})
        sizes = lambda axes, s: [s[a] if a in s else self.dims(a, static=True)[0] for a in axes]  # noqa: E731
        return {name: (sizes(axes, lo), sizes(axes, opt), sizes(axes, hi))
                for name, _, axes in OP_INPUTS[self.op] if any(a in "BTM" for a in axes)}


def one_node_model(case: Case):
    """ModelProto: one rrwkv node with the plugin attributes plus case.attrs, and no FunctionProto."""
    inputs = [helper.make_tensor_value_info(n, ONNX_DTYPES[d], s) for n, d, s in case.inputs()]
    # The parser needs a declared output type but takes type and shape from the plugin (an fp16 y comes out
    # HALF though declared FLOAT), so outputs are declared FLOAT without a shape and checked against the contract.
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n, _ in op_outputs(case.op)]
    node = helper.make_node(case.op, [i.name for i in inputs], [o.name for o in outputs], name=f"{case.op}_0",
                            domain="rrwkv", **PLUGIN_ATTRS, **case.attrs)
    graph = helper.make_graph([node], f"one_{case.op}", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("rrwkv", 1)])


@functools.cache
def load_plugins(trt) -> Path:
    """Build the library and load it into the process-wide registry, once per process: loadLibrary fails when
    the library's creators are already registered. Loads through runtime.trt_loader.load_plugin_library, so the engine
    tests (tests/runtime/test_engine_build.py) and these share the one load a process may do."""
    from rrwkv_trt.runtime.trt_loader import load_plugin_library

    ensure_unversioned_lib()
    return load_plugin_library(trt, plugin_library())


HARNESS_SRC = Path(__file__).with_name("pluginHarness.cpp")
HARNESS = RTX_DIR / "pluginHarness"


def harness() -> Path:
    """build/rtx/pluginHarness (host-only C++ driver of the library's creators and plugins), rebuilt when stale."""
    if HARNESS.exists() and HARNESS.stat().st_mtime >= HARNESS_SRC.stat().st_mtime:
        return HARNESS
    trt_include = _trt_include()
    RTX_DIR.mkdir(parents=True, exist_ok=True)
    cmd = ["nvcc", "-std=c++17", "-isystem", trt_include, str(HARNESS_SRC), "-o", str(HARNESS), "-ldl"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building {HARNESS} failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return HARNESS


def recording_logger(trt):
    """A trt.ILogger subclass instance that keeps (severity, message) and a `text()` of the errors."""
    class RecordingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple] = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

        def errors(self) -> str:
            bad = (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR)
            return "\n".join(m for s, m in self.messages if s in bad)

    return RecordingLogger()


def parse_model(trt, logger, model):
    """(builder, network, parser errors): `model` (ModelProto) parsed into a fresh strongly typed network."""
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(model.SerializeToString())
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    assert ok == (not errors), (ok, errors)
    return builder, network, errors


def parse(trt, logger, case):
    """parse_model of the one-node model of a Case or MatMulCase."""
    return parse_model(trt, logger, case.model())


def build_profile(trt, builder, network, shapes: dict | None = None):
    """Serialized plan (IHostMemory) for SM86, or None. shapes: {input name: (min, opt, max)} of one optimisation
    profile, for the inputs with dynamic dims."""
    config = builder.create_builder_config()
    config.num_compute_capabilities = 1
    config.set_compute_capability(trt.ComputeCapability.SM86, 0)
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


def build(trt, builder, network, case):
    """build_profile with the case's profile (Case or MatMulCase)."""
    return build_profile(trt, builder, network, case.profile())


@dataclass
class MatMulCase:
    """One one-node weight-only MatMul graph (W8Case, WF16Case): x [*lead, K] f32 (lead symbolic when dynamic)
    and the packed tensors of a seeded random [K, N] weight, as initializers the way an export stores them
    (weights="initializer") or as graph inputs (weights="input"). attrs: the node's op attributes (None: the op's
    own); overrides: {input name: (dtype, shape)} makes that input a graph input of that type, and x_K gives x (and
    its profile) another last dim than the weight's K, for invalid graphs."""
    K: int = 130
    N: int = 65
    lead: tuple = (2, 5)
    dynamic: bool = False
    weights: str = "initializer"
    attrs: dict | None = None
    overrides: dict = field(default_factory=dict)
    x_K: int | None = None

    def x_shape(self) -> list:
        return [f"d{i}" if self.dynamic else d for i, d in enumerate(self.lead)] + [self.x_K or self.K]

    def profile(self) -> dict:
        """{"x": (min, opt, max)} for a dynamic case: every leading dim from 1 to 4x its size."""
        if not self.dynamic:
            return {}
        K = self.x_K or self.K
        return {"x": ([1] * len(self.lead) + [K], [*self.lead, K], [4 * d for d in self.lead] + [K])}


@dataclass
class W8Case(MatMulCase):
    """A one-node MatMulW8 graph: (w, scale) from export.w8_pack.quantize_w8."""
    block_size: int = 32

    def node_attrs(self) -> dict:
        return {"N": self.N, "block_size": self.block_size} if self.attrs is None else self.attrs

    def model(self):
        from rrwkv_trt.export.w8_pack import quantize_w8

        weight = np.random.default_rng(0).standard_normal((self.K, self.N)).astype(np.float32)
        return matmul_model(self, "MatMulW8", dict(zip(("w", "scale"), quantize_w8(weight, self.block_size))))


@dataclass
class W4Case(W8Case):
    """A one-node MatMulW4 graph: (w, scale) from export.w4_pack.quantize_w4."""

    def model(self):
        from rrwkv_trt.export.w4_pack import quantize_w4

        weight = np.random.default_rng(0).standard_normal((self.K, self.N)).astype(np.float32)
        return matmul_model(self, "MatMulW4", dict(zip(("w", "scale"), quantize_w4(weight, self.block_size))))


@dataclass
class WF16Case(MatMulCase):
    """A one-node MatMulWF16 graph: w from export.wf16_pack.pack_wf16."""

    def node_attrs(self) -> dict:
        return {"N": self.N} if self.attrs is None else self.attrs

    def model(self):
        from rrwkv_trt.export.wf16_pack import pack_wf16

        weight = np.random.default_rng(0).standard_normal((self.K, self.N)).astype(np.float32)
        return matmul_model(self, "MatMulWF16", {"w": pack_wf16(weight)})


def matmul_model(case: MatMulCase, op: str, packed: dict[str, np.ndarray]):
    """ModelProto: one rrwkv::`op` node over x and the `packed` weight tensors, with the plugin attributes plus the op
    attributes, no FunctionProto."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, case.x_shape())]
    initializers = []
    for name, array in packed.items():
        if case.weights == "initializer":
            initializers.append(numpy_helper.from_array(array, name))
        else:
            inputs.append(helper.make_tensor_value_info(name, ONNX_DTYPES[str(array.dtype)], list(array.shape)))
    for name, (dtype, shape) in case.overrides.items():
        inputs = [i for i in inputs if i.name != name]
        inputs.append(helper.make_tensor_value_info(name, ONNX_DTYPES[dtype], shape))
        initializers = [i for i in initializers if i.name != name]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]  # type and shape come from the plugin
    node = helper.make_node(op, ["x", *packed], ["y"], name=f"{op}_0", domain="rrwkv", **PLUGIN_ATTRS,
                            **case.node_attrs())
    graph = helper.make_graph([node], f"one_{op}", inputs, outputs, initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("rrwkv", 1)])
