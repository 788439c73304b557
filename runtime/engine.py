"""TensorRT engine build: strip the rrwkv functions, parse, check the plugin layers, build, write engine + sidecar.

`onnx` and `tensorrt` are imported lazily (GPU hosts, `pip install 'rrwkv-trt[trt]'`). Every builder function takes
the TensorRT module as an argument, so the whole path also runs under TensorRT-RTX (`tensorrt_rtx`, a CPU-only NVIDIA
builder; TOOLCHAIN.md §10). API differences between the two are handled with hasattr, here only.

Why the functions are stripped (CONVENTIONS.md §4.1): depending on its version, the ONNX parser either binds an rrwkv
node to the registered plugin or silently inlines the model-local FunctionProto. Without the function, a node whose
plugin is not registered fails the parse ("Plugin not found") instead of building the slow Scan body. The parser flag
ENABLE_PLUGIN_OVERRIDE is set too where it exists, and every rrwkv node is checked to be a PLUGIN_V3 layer.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .metadata import EngineSidecar, ModelInfo, from_metadata, sidecar_path, write_sidecar

PLUGIN_LIBRARY = "librrwkv_trt_plugins_dyn.so"
DOMAIN = "rrwkv"
PLUGIN_NAMESPACE = "rrwkv"
PLUGIN_VERSION = "1"
PLUGIN_OPS = ("WKV4", "WKV4Medium")  # rrwkv op_type == TensorRT plugin name (plugins/README.md)
ENGINE_SUFFIXES = (".plan", ".engine")
INPUT_IDS = "input_ids"
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_SEQ = 1024
PROFILES = {"decode": 0, "prefill": 1}  # optimisation-profile indices, recorded in the sidecar
# The source checkout this package runs from (editable install): <repo>/runtime/engine.py -> <repo>/build.
_REPO_BUILD_DIR = Path(__file__).resolve().parents[1] / "build"

_log = logging.getLogger(__name__)
_logged: set[str] = set()
_loggers: dict[str, object] = {}  # TensorRT module name -> its process-wide logger
_loaded_library: dict[str, Path] = {}  # TensorRT module name -> the plugin library loaded into its registry

Progress = Callable[[str], None]


def _log_once(level: int, message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        _log.log(level, message)


def import_tensorrt():
    """The full TensorRT Python module (`tensorrt`), or a UserError saying how to get it."""
    try:
        import tensorrt
    except ImportError as err:
        raise UserError(f"TensorRT is not installed ({err}); on a host with an NVIDIA GPU run "
                        "pip install 'rrwkv-trt[trt]' (NVIDIA's wheels; TOOLCHAIN.md §11)") from None
    return tensorrt


def import_tensorrt_rtx():
    """TensorRT-RTX (`tensorrt_rtx`), a CPU-capable ahead-of-time builder: it checks the plugins on machines without
    a GPU (TOOLCHAIN.md §10); its engines run only on TensorRT-RTX."""
    try:
        import tensorrt_rtx
        import tensorrt_rtx_libs
    except ImportError as err:
        raise UserError(f"TensorRT-RTX is not installed ({err}); pip install tensorrt-rtx-cu13==1.7.1.116") from None
    libdir = Path(tensorrt_rtx_libs.__file__).parent
    if not (libdir / "libtensorrt_rtx.so").exists():
        # Without it the process aborts inside the ONNX parser at the first plugin node (TOOLCHAIN.md §10).
        raise UserError(f"TensorRT-RTX's ONNX parser needs {libdir}/libtensorrt_rtx.so, which the wheel lacks; create "
                        f"it with: ln -s libtensorrt_rtx.so.1 {libdir}/libtensorrt_rtx.so")
    return tensorrt_rtx


def tensorrt_product(trt) -> tuple[str, str]:
    """("TensorRT" | "TensorRT-RTX", version) of a TensorRT Python module."""
    product = "TensorRT-RTX" if trt.__name__.split(".")[0] == "tensorrt_rtx" else "TensorRT"
    return product, str(trt.__version__)


def trt_logger(trt):
    """One logger per TensorRT module and process (TensorRT keeps the first one it sees). It forwards to `logging`
    and keeps the recent errors, which `recent_errors()` puts into UserError messages."""
    key = trt.__name__
    if key not in _loggers:
        class RecordingLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity, msg):
                # Errors go into the UserError/RuntimeError of the call that failed (`take_errors`), so the CLI
                # prints one line; warnings are mostly parser chatter ("Make sure input ... has Int64 binding").
                if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                    self.errors = [*self.errors[-19:], msg]
                _log.debug("[TRT] %s", msg)

        _loggers[key] = RecordingLogger()
    return _loggers[key]


def take_errors(trt) -> str:
    logger = trt_logger(trt)
    # TensorRT-RTX on a machine without a GPU appends a CUDA-driver error to every error; it says nothing here.
    errors = [e for e in logger.errors if "CUDA driver version is insufficient" not in e]
    logger.errors = []
    return "; ".join(errors[-3:]) if errors else "see TensorRT's log"


# ---- plugin library ----

def plugin_search_path() -> list[Path]:
    """Where `find_plugin_library` looks, in order: the build/ folder of the source checkout this package is
    imported from (where `make plugins` writes it). No environment variables are consulted."""
    return [_REPO_BUILD_DIR / PLUGIN_LIBRARY]


def find_plugin_library(library: str | os.PathLike | None = None) -> Path:
    """`library` if given (it must exist), else the first existing file of `plugin_search_path()`."""
    if library is not None:
        path = Path(library)
        if not path.is_file():
            raise UserError(f"plugin library {path} not found; run `make plugins` or pass the path of "
                            f"{PLUGIN_LIBRARY}")
        return path.resolve()
    found = next((p for p in plugin_search_path() if p.is_file()), None)
    if found is None:
        raise UserError(f"plugin library {PLUGIN_LIBRARY} not found in {[str(p) for p in plugin_search_path()]}; "
                        "run `make plugins` (or pass --plugin-library PATH)")
    return found.resolve()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def elf_needed(path: str | os.PathLike) -> list[str] | None:
    """DT_NEEDED entries of a 64-bit little-endian ELF shared library; None if the file is not one."""
    data = Path(path).read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    needed = []
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        strtab_offset = sections[link][4]
        for pos in range(offset, offset + size, entsize or 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                start = strtab_offset + value
                needed.append(data[start:data.index(b"\0", start)].decode())
    return needed


def check_plugin_library(path: Path, trt) -> None:
    """Refuse a file that is no ELF library, or one linked against another TensorRT major version.

    The dynamic-registration library links no libnvinfer, so its TensorRT version is only checked by the creators
    that loading must register (see `load_plugin_library`)."""
    needed = elf_needed(path)
    if needed is None:
        raise UserError(f"plugin library {path} is not a 64-bit ELF shared library; run `make plugins`")
    product, version = tensorrt_product(trt)
    major = version.split(".")[0]
    for name in needed:
        m = re.fullmatch(r"libnvinfer\.so\.(\d+)", name)
        if m and (product != "TensorRT" or m.group(1) != major):
            raise UserError(f"plugin library {path} was built for TensorRT {m.group(1)} (it links {name}); this is "
                            f"{product} {version}; rebuild it against this TensorRT with `make plugins` "
                            "(TENSORRT_ROOT=...)")


def load_plugin_library(trt, library: str | os.PathLike | None = None) -> Path:
    """Load the dynamic-registration plugin library into `trt`'s plugin registry, once per process.

    A process loads one rrwkv plugin library, once (CONVENTIONS.md §4.4): asking again for the same file is a no-op,
    asking for another one is an error. After loading, every rrwkv creator must resolve as (op, "1", "rrwkv").

    Returns: the resolved library path.
    """
    path = find_plugin_library(library)
    key = trt.__name__
    if key in _loaded_library:
        if _loaded_library[key] != path:
            raise UserError(f"plugin library {_loaded_library[key]} is already loaded in this process and a process "
                            f"loads one rrwkv plugin library; cannot also load {path} (use one, or a new process)")
        return path
    check_plugin_library(path, trt)
    # The registry logs through the logger of a live Builder/Runtime (TensorRT keeps one per process); a short-lived
    # Runtime makes that ours while the library loads, so its errors reach the message below.
    anchor = trt.Runtime(trt_logger(trt))
    registry = trt.get_plugin_registry()
    missing = [op for op in PLUGIN_OPS if not _has_creator(registry, op)]
    if not missing:
        raise UserError(f"the rrwkv plugins are already registered in this process (was librrwkv_trt_plugins.so "
                        f"loaded with ctypes?); a process loads one rrwkv plugin library, so {path} cannot be loaded")
    take_errors(trt)
    if registry.load_library(str(path)) is None:
        errors = take_errors(trt)
        hint = (f"it exports no getCreators: pass the dynamic-registration library {PLUGIN_LIBRARY}"
                if "getCreators" in errors else "it may have been built for another TensorRT version: rebuild it "
                "with `make plugins`")
        raise UserError(f"{tensorrt_product(trt)[0]} could not load plugin library {path} ({errors}); {hint}")
    del anchor
    missing = [op for op in PLUGIN_OPS if not _has_creator(registry, op)]
    if missing:
        raise UserError(f"plugin library {path} loaded but registers no creator for {missing} (version "
                        f"{PLUGIN_VERSION}, namespace {PLUGIN_NAMESPACE}); rebuild it with `make plugins`")
    _loaded_library[key] = path
    _log.info("rrwkv TensorRT plugins: %s", path)
    return path


def _has_creator(registry, op: str) -> bool:
    # get_creator logs an API-usage error when the creator is missing; all_creators does not.
    want = (op, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    return any(tuple(getattr(c, a, None) for a in ("name", "plugin_version", "plugin_namespace")) == want
               for c in registry.all_creators)


# ---- ONNX side (onnx imported lazily) ----

@dataclass(frozen=True)
class PluginNode:
    """An rrwkv node of the ONNX graph: it must become a PLUGIN_V3 layer named `name`."""

    name: str
    op_type: str


def _import_onnx():
    try:
        import onnx
    except ImportError as err:
        raise UserError(f"building an engine needs the onnx package ({err}); pip install 'rrwkv-trt[trt]'") from None
    return onnx


def resolve_onnx_path(model: str | os.PathLike) -> Path:
    """An export OUT_DIR (-> OUT_DIR/model.onnx) or a .onnx file."""
    path = Path(model)
    if path.is_dir():
        path = path / "model.onnx"
        if not path.is_file():
            raise UserError(f"{path.parent} has no model.onnx; export a model into it with `rrwkv-trt export`")
    elif not path.is_file():
        raise UserError(f"model {path} not found; pass an export OUT_DIR or a .onnx file")
    return path


def _graph_nodes(graph) -> Iterator:
    import onnx

    for node in graph.node:
        yield node
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _graph_nodes(g)


def rrwkv_nodes(model, source: str = "model") -> list[PluginNode]:
    """The rrwkv nodes of `model`'s graph, checked against the plugins this project provides."""
    import onnx

    nodes = []
    for node in _graph_nodes(model.graph):
        if node.domain != DOMAIN:
            continue
        if node.op_type not in PLUGIN_OPS:
            raise UserError(f"{source}: node {node.name!r} is rrwkv::{node.op_type}, which has no TensorRT plugin; "
                            f"plugins exist for {list(PLUGIN_OPS)}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        want = {"plugin_namespace": PLUGIN_NAMESPACE.encode(), "plugin_version": PLUGIN_VERSION.encode()}
        bad = {k: attrs.get(k) for k, v in want.items() if attrs.get(k) != v}
        if bad:
            raise UserError(f"{source}: node {node.name!r} ({node.op_type}) has {bad}, expected plugin_namespace="
                            f"{PLUGIN_NAMESPACE!r} and plugin_version={PLUGIN_VERSION!r}; re-export the model")
        nodes.append(PluginNode(node.name, node.op_type))
    if not nodes:
        raise UserError(f"{source} has no rrwkv nodes (domain {DOMAIN!r}, ops {list(PLUGIN_OPS)}): nothing for the "
                        "TensorRT plugins to run; build an engine from a model exported by `rrwkv-trt export`")
    return nodes


def strip_functions(model, domain: str = DOMAIN):
    """A copy of `model` without the FunctionProtos of `domain` (the same as export.ops.strip_functions, which the
    runtime may not import): the parser must then use the plugin or fail."""
    onnx = _import_onnx()
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    keep = [f for f in stripped.functions if f.domain != domain]
    del stripped.functions[:]
    stripped.functions.extend(keep)
    return stripped


def load_model(model: str | os.PathLike):
    """(ModelProto, ModelInfo, path, rrwkv nodes) of an exported model; UserError for anything unusable."""
    onnx = _import_onnx()
    path = resolve_onnx_path(model)
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and others; the message names the file
        raise UserError(f"cannot read ONNX model {path}: {err}") from None
    info = from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(path))
    return proto, info, path, rrwkv_nodes(proto, source=str(path))


# ---- TensorRT side: every function takes the TensorRT module ----

class ParsedNetwork:
    """Builder, network and parser kept together: the network uses weights the parser owns."""

    def __init__(self, trt, model_bytes: bytes, model_path: Path, nodes: list[PluginNode],
                 plugin_override: bool = True) -> None:
        self.builder = trt.Builder(trt_logger(trt))
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # TRT 10.x; TRT 11 is always strongly typed
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        self.network = self.builder.create_network(flags)
        self.parser = trt.OnnxParser(self.network, trt_logger(trt))
        if plugin_override and hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "ENABLE_PLUGIN_OVERRIDE"):
            self.parser.set_flag(trt.OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE)
        ok = self.parser.parse(model_bytes, str(model_path))
        errors = [str(self.parser.get_error(i)) for i in range(self.parser.num_errors)]
        if not ok or errors:
            raise _parse_error(trt, model_path, nodes, errors)


def _parse_error(trt, model_path: Path, nodes: list[PluginNode], errors: list[str]) -> UserError:
    product = tensorrt_product(trt)[0]
    unbound = sorted({n.op_type for n in nodes if any("Plugin not found" in e and n.name in e for e in errors)})
    if unbound or any("Plugin not found" in e for e in errors):
        return UserError(f"{product} found no plugin for rrwkv::{', rrwkv::'.join(unbound) or '?'} while parsing "
                         f"{model_path}: the rrwkv plugin library is not loaded or lacks these creators; run "
                         f"`make plugins` and pass --plugin-library {PLUGIN_LIBRARY}")
    return UserError(f"{product} cannot parse {model_path}: {errors[0] if errors else take_errors(trt)}"
                     + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))


def check_plugin_layers(trt, network, nodes: list[PluginNode]) -> list[str]:
    """Every rrwkv node must be a PLUGIN_V3 layer of the same name whose plugin is (op, "rrwkv", "1").

    Returns: the plugin layer names. Raises UserError when TensorRT built anything else for an rrwkv node."""
    layers = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.PLUGIN_V3:
            layer.__class__ = trt.IPluginV3Layer  # get_layer returns the base class
            core = layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
            layers[layer.name] = (core.plugin_name, core.plugin_namespace, core.plugin_version)
    for node in nodes:
        want = (node.op_type, PLUGIN_NAMESPACE, PLUGIN_VERSION)
        got = layers.get(node.name)
        if got is None:
            raise UserError(f"TensorRT inlined the function body of rrwkv::{node.op_type} (node {node.name!r}) "
                            "instead of using the plugin; build from a model whose rrwkv functions are stripped, "
                            f"with {PLUGIN_LIBRARY} loaded (`make plugins`)")
        if got != want:
            raise UserError(f"node {node.name!r} became plugin {got} (name, namespace, version), expected {want}; "
                            "rebuild the plugin library with `make plugins`")
    return [n.name for n in nodes]


def add_profiles(trt, builder, config, network, info: ModelInfo, max_batch: int, max_seq: int) -> dict[str, int]:
    """Two optimisation profiles: decode (seq = 1) and prefill (seq 1..max_seq); batch 1..max_batch in both.

    opt is batch 1 (one stream, as `rrwkv-trt run` decodes) and seq max_seq for prefill (longer prompts are
    prefilled in max_seq chunks). Returns {"decode": index, "prefill": index}."""
    spec = info.state
    expected = [INPUT_IDS, *spec.input_names()]
    have = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(have) != sorted(expected):
        missing, extra = sorted(set(expected) - set(have)), sorted(set(have) - set(expected))
        raise UserError(f"network inputs do not match the model's rrwkv.state_spec metadata (missing {missing[:4]}, "
                        f"unexpected {extra[:4]}); re-export the model")
    shapes = {t.input_name: (lambda b, t=t: spec.concrete_shape(t.slot, b)) for t in spec.tensors()}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name == INPUT_IDS:
            continue
        want = shapes[tensor.name](max_batch)
        got = tuple(tensor.shape)
        if len(got) != len(want) or any(g not in (-1, w) for g, w in zip(got[1:], want[1:])):
            raise UserError(f"network input {tensor.name} has shape {list(got)}, the state spec expects "
                            f"{['batch', *want[1:]]}; re-export the model")
    indices = {}
    for name, (seq_opt, seq_max) in (("decode", (1, 1)), ("prefill", (max_seq, max_seq))):
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_IDS, (1, 1), (1, seq_opt), (max_batch, seq_max))
        for state_name, shape in shapes.items():
            profile.set_shape(state_name, shape(1), shape(1), shape(max_batch))
        indices[name] = config.add_optimization_profile(profile)
    assert indices == PROFILES, indices  # the sidecar and TrtSession rely on this order
    return indices


def _aot_builder(trt) -> bool:
    """TensorRT-RTX compiles ahead of time for named compute capabilities; full TensorRT for the GPU it runs on."""
    return hasattr(trt, "ComputeCapability") and hasattr(trt.IBuilderConfig, "set_compute_capability")


def _target_compute_capability(trt, compute_capability: str | None) -> str | None:
    """The compute capability the engine will be for, "major.minor", or None when it cannot be told."""
    gpu = gpu_compute_capability()
    if _aot_builder(trt):
        target = compute_capability or (gpu[0] if gpu else None)
        if target is None:
            raise UserError(f"{tensorrt_product(trt)[0]} needs a target compute capability and this machine has no "
                            "GPU to take it from; pass one, e.g. 8.6")
        member = getattr(trt.ComputeCapability, "SM" + target.replace(".", ""), None)
        if member is None:
            known = [n[2:-1] + "." + n[-1] for n in dir(trt.ComputeCapability) if re.fullmatch(r"SM\d+", n)]
            raise UserError(f"{tensorrt_product(trt)[0]} cannot target compute capability {target}; it knows "
                            f"{sorted(known, key=lambda v: tuple(map(int, v.split('.'))))}")
        return target
    if compute_capability is not None and (gpu is None or gpu[0] != compute_capability):
        raise UserError(f"TensorRT builds for the GPU it runs on ({gpu[0] if gpu else 'none found'}), not for compute "
                        f"capability {compute_capability}; build on a GPU of that kind, or drop the option")
    return gpu[0] if gpu else None


def _progress_monitor(trt, report: Progress):
    """A trt.IProgressMonitor that reports top-level phases and their children, or None if TensorRT has none."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.started: dict[str, tuple[float, int]] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = self.started[parent_phase][1] + 1 if parent_phase in self.started else 0
            self.started[phase_name] = (time.monotonic(), depth)
            if depth <= 1:
                report(f"{'  ' * (depth + 1)}{phase_name}" + (f" ({num_steps} steps)" if num_steps > 1 else ""))

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            self.started.pop(phase_name, None)

    return Monitor()


def build_engine(model: str | os.PathLike, engine: str | os.PathLike, *, max_batch: int | None = None,
                 max_seq: int | None = None, plugin_library: str | os.PathLike | None = None,
                 compute_capability: str | None = None, progress: Progress | None = None,
                 trt=None) -> EngineSidecar:
    """Build a TensorRT engine for an exported model and write `engine` plus its sidecar `<engine>.json`.

    Args:
        model: an export OUT_DIR or a .onnx file with rrwkv nodes and rrwkv metadata.
        engine: the engine file to write (.plan or .engine); written to a temporary name, then renamed.
        max_batch, max_seq: profile maxima; None means DEFAULT_MAX_BATCH / DEFAULT_MAX_SEQ.
        plugin_library: librrwkv_trt_plugins_dyn.so; None searches `plugin_search_path()`.
        compute_capability: "major.minor"; TensorRT-RTX targets it (None: this GPU's), full TensorRT checks it.
        progress: called with one line per phase; None logs them at INFO.
        trt: the TensorRT module; None imports `tensorrt` (tests pass `tensorrt_rtx`).
    Returns:
        the sidecar that was written.
    """
    report = progress or (lambda line: _log.info("%s", line.strip()))
    max_batch = DEFAULT_MAX_BATCH if max_batch is None else max_batch
    max_seq = DEFAULT_MAX_SEQ if max_seq is None else max_seq
    for name, value in (("max_batch", max_batch), ("max_seq", max_seq)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be an int >= 1, got {value!r}")
    engine = Path(engine)
    if engine.suffix not in ENGINE_SUFFIXES:
        raise UserError(f"engine file {engine} must end in {' or '.join(ENGINE_SUFFIXES)}")
    if engine.is_dir():
        raise UserError(f"engine path {engine} is a folder; name the file to write, e.g. {engine / 'model.plan'}")
    proto, info, model_path, nodes = load_model(model)
    trt = import_tensorrt() if trt is None else trt
    product, version = tensorrt_product(trt)
    target = _target_compute_capability(trt, compute_capability)
    library = load_plugin_library(trt, plugin_library)

    start = time.monotonic()
    report(f"parsing {model_path} with {product} {version} ({len(nodes)} rrwkv nodes, functions stripped)")
    parsed = ParsedNetwork(trt, strip_functions(proto).SerializeToString(), model_path, nodes)
    layers = check_plugin_layers(trt, parsed.network, nodes)
    config = parsed.builder.create_builder_config()
    if _aot_builder(trt):
        config.num_compute_capabilities = 1
        config.set_compute_capability(getattr(trt.ComputeCapability, "SM" + target.replace(".", "")), 0)
    profiles = add_profiles(trt, parsed.builder, config, parsed.network, info, max_batch, max_seq)
    if hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer types for the engine inspector
    monitor = _progress_monitor(trt, report)
    if monitor is not None and hasattr(config, "progress_monitor"):
        config.progress_monitor = monitor
    report(f"building for {'compute capability ' + target if target else 'this GPU'}: batch 1..{max_batch}, "
           f"prefill seq 1..{max_seq}, decode seq 1")
    take_errors(trt)
    plan = parsed.builder.build_serialized_network(parsed.network, config)
    if plan is None:
        raise UserError(f"{product} failed to build an engine for {model_path}: {take_errors(trt)}")
    plan = bytes(plan)
    inspected = check_engine_plugin_layers(trt, plan, nodes)
    gpu = gpu_compute_capability()
    sidecar = EngineSidecar(
        info=info, tensorrt_product=product, tensorrt_version=version, compute_capability=target,
        gpu_name=gpu[1] if gpu and gpu[0] == target else None, plugin_library=str(library),
        plugin_sha256=file_sha256(library), max_batch=max_batch, max_seq=max_seq, profiles=profiles,
        plugin_layers=tuple(layers), engine_inspected=inspected, engine_bytes=len(plan),
        source_model=str(model_path.resolve()), source_sha256=file_sha256(model_path))
    write_engine(engine, plan, sidecar)
    report(f"wrote {engine} ({len(plan) / 1e6:.1f} MB) and {sidecar_path(engine)} in "
           f"{time.monotonic() - start:.1f} s")
    return sidecar


def write_engine(engine: Path, plan: bytes, sidecar: EngineSidecar) -> None:
    """Write engine and sidecar under temporary names in the target folder, then rename both."""
    engine.parent.mkdir(parents=True, exist_ok=True)
    tmp_files = []
    try:
        for target, write in ((engine, lambda p: p.write_bytes(plan)),
                              (sidecar_path(engine), lambda p: write_sidecar(p, sidecar))):
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(fd)
            tmp_files.append((Path(tmp), target))
            write(Path(tmp))
            os.chmod(tmp, 0o644)
        for tmp, target in tmp_files:
            os.replace(tmp, target)
    except OSError as err:
        raise UserError(f"cannot write engine {engine}: {err}") from None
    finally:
        for tmp, _ in tmp_files:
            tmp.unlink(missing_ok=True)


def check_engine_plugin_layers(trt, plan: bytes, nodes: list[PluginNode]) -> bool:
    """Where the engine can be deserialised (full TensorRT on a GPU), check with the engine inspector that every
    rrwkv node is a plugin layer of the built engine. Returns whether the check ran."""
    if tensorrt_product(trt)[0] != "TensorRT" or gpu_compute_capability() is None:
        return False
    runtime = trt.Runtime(trt_logger(trt))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise UserError(f"TensorRT built an engine it cannot deserialise: {take_errors(trt)}")
    inspector = engine.create_engine_inspector()
    info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    missing = missing_plugin_layers(info, nodes)
    if missing:
        raise UserError(f"the built engine has no plugin layer for rrwkv nodes {missing[:4]}; TensorRT inlined the "
                        f"function body; rebuild with {PLUGIN_LIBRARY} loaded (`make plugins`)")
    return True


def missing_plugin_layers(engine_info_json: str, nodes: list[PluginNode]) -> list[str]:
    """Names of `nodes` that the engine inspector's JSON does not show as plugin layers.

    With DETAILED profiling verbosity each layer is an object with "Name" and "LayerType" ("PluginV3"); with less,
    a bare name, which then only has to be present."""
    layers = json.loads(engine_info_json).get("Layers", [])
    plugin_names, names = [], []
    for layer in layers:
        if isinstance(layer, dict):
            name = str(layer.get("Name", ""))
            names.append(name)
            if "plugin" in str(layer.get("LayerType", "")).lower():
                plugin_names.append(name)
        else:
            names.append(str(layer))
    detailed = any(isinstance(layer, dict) and "LayerType" in layer for layer in layers)
    pool = plugin_names if detailed else names
    return [n.name for n in nodes if not any(n.name in name for name in pool)]


# ---- compatibility of an engine with the running TensorRT and GPU (pure Python) ----

def gpu_compute_capability(device: int = 0) -> tuple[str, str] | None:
    """("major.minor", name) of CUDA device `device` through the driver API (libcuda, via ctypes); None without a
    driver or a GPU. Needs no cuda-python."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(dev), device) != 0:
        return None
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
    if (cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) != 0):
        return None
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, dev)
    return f"{major.value}.{minor.value}", name.value.decode(errors="replace")


def check_engine_compatible(engine: str | os.PathLike, sidecar: EngineSidecar, product: str, version: str,
                            gpu: tuple[str, str] | None) -> None:
    """Before deserialising: the engine must come from this TensorRT product and version and target this GPU.

    Args:
        engine: the engine path (for messages); sidecar: its sidecar; product, version: `tensorrt_product(trt)`;
        gpu: `gpu_compute_capability()`.
    Raises: UserError saying what differs and to rebuild the engine.
    """
    rebuild = f"rebuild the engine on this host with `rrwkv-trt build {sidecar.source_model} -o {engine}`"
    built = f"{sidecar.tensorrt_product} {sidecar.tensorrt_version}"
    if sidecar.tensorrt_product != product:
        raise UserError(f"engine {engine} was built by {built}; this runtime is {product} {version}, which cannot "
                        f"load it; {rebuild}")
    if sidecar.tensorrt_version != version:
        raise UserError(f"engine {engine} was built with {built}; this is {product} {version} and engines only load "
                        f"into the TensorRT version that built them; {rebuild}")
    if gpu is None:
        raise UserError(f"no CUDA GPU found (the NVIDIA driver's libcuda.so.1 reports none); engine {engine} needs "
                        f"one of compute capability {sidecar.compute_capability or 'unknown'}")
    if sidecar.compute_capability is None:
        _log_once(logging.WARNING, f"engine {engine}: its sidecar does not record the GPU it was built for; "
                                   f"loading it on {gpu[1]} (compute capability {gpu[0]})")
    elif sidecar.compute_capability != gpu[0]:
        was = f" ({sidecar.gpu_name})" if sidecar.gpu_name else ""
        raise UserError(f"engine {engine} was built for compute capability {sidecar.compute_capability}{was}; this "
                        f"GPU is {gpu[1]} (compute capability {gpu[0]}); {rebuild}")


def resolve_engine_path(engine: str | os.PathLike) -> Path:
    path = Path(engine)
    if path.suffix not in ENGINE_SUFFIXES:
        raise UserError(f"{path} is not an engine file ({' or '.join(ENGINE_SUFFIXES)}); build one with "
                        "`rrwkv-trt build OUT_DIR -o model.plan`")
    if not path.is_file():
        raise UserError(f"engine {path} not found; build it with `rrwkv-trt build OUT_DIR -o {path}`")
    return path


def is_engine_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix in ENGINE_SUFFIXES


def tokenizer_dir(engine: str | os.PathLike) -> Path:
    """Where the tokenizer of an engine is: beside the engine if a tokenizer.json is there, else beside the model
    the engine was built from (its export folder, recorded in the sidecar)."""
    from .metadata import read_sidecar

    engine = Path(engine)
    if (engine.parent / "tokenizer.json").is_file():
        return engine.parent
    return Path(read_sidecar(engine).source_model).parent
