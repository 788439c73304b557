"""TensorRT engine build and load checks: parse the stripped model, check the plugin layers, build, write
engine + sidecar; before loading, check that an engine suits this TensorRT and GPU.

`onnx` and `tensorrt` are imported lazily, by onnx_graph.py and trt_loader.py (GPU hosts, `pip install
'rrwkv-trt[trt]'`). Every builder function takes the TensorRT module as an argument, so the whole path also runs under
TensorRT-RTX (`tensorrt_rtx`, a CPU-only NVIDIA builder; docs/toolchain.md §10). API differences between the two are
handled with hasattr, here only.

Why the functions are stripped (docs/conventions.md §4.1): depending on its version, the ONNX parser either binds an
rrwkv node to the registered plugin or silently inlines the model-local FunctionProto. Without the function, a node
whose plugin is not registered fails the parse ("Plugin not found") instead of building the slow Scan body. The
parser flag ENABLE_PLUGIN_OVERRIDE is set too where it exists, and every rrwkv node is checked to be a PLUGIN_V3
layer.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from rrwkv_trt.core.errors import UserError
from .logs import log_once
from rrwkv_trt.core.metadata import ModelInfo, WEIGHT_ONLY_PRECISIONS, file_sha256, model_sha256
from rrwkv_trt.core.files import fsync_dir, stage_file
from rrwkv_trt.core.sidecar import EngineSidecar, sidecar_path, sidecar_text
from .onnx_graph import PluginNode, load_model, tensorrt_graph
from rrwkv_trt.core.names import INPUT_IDS, TOKENIZER_FILE
from rrwkv_trt.core.ops import PLUGIN_NAMESPACE, PLUGIN_VERSION
from .trt_loader import (
    PLUGIN_LIBRARY,
    import_tensorrt,
    load_plugin_library,
    take_errors,
    tensorrt_product,
    trt_logger,
)

ENGINE_SUFFIXES = (".plan", ".engine")
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_SEQ = 1024
PROFILES = {"decode": 0, "prefill": 1}  # optimisation-profile indices, recorded in the sidecar

_log = logging.getLogger(__name__)

Progress = Callable[[str], None]


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
        model: a model folder from `rrwkv-trt export` or a .onnx file with rrwkv nodes and rrwkv metadata.
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
    if info.config.max_call_tokens is not None and max_seq > info.config.max_call_tokens:
        report(f"prefill seq capped at {info.config.max_call_tokens}: the model's graph takes at most that many "
               "tokens per call (max_call_tokens)")
        max_seq = info.config.max_call_tokens
    if info.precision in WEIGHT_ONLY_PRECISIONS:
        raise UserError(f"{model_path} is a {info.precision} export for ONNX Runtime on the CPU (weight-only "
                        "MatMuls); build the engine from an fp32 or fp16 export")
    trt = import_tensorrt() if trt is None else trt
    product, version = tensorrt_product(trt)
    target = _target_compute_capability(trt, compute_capability)
    library = load_plugin_library(trt, plugin_library)

    start = time.monotonic()
    report(f"parsing {model_path} with {product} {version} ({len(nodes)} rrwkv nodes, functions stripped)")
    parsed = ParsedNetwork(trt, tensorrt_graph(proto).SerializeToString(), model_path, nodes)
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
        source_model=str(model_path.resolve()), source_sha256=model_sha256(model_path))
    tokenizer = model_path.parent / TOKENIZER_FILE
    write_engine(engine, plan, sidecar, tokenizer if tokenizer.is_file() else None)
    report(f"wrote {engine} ({len(plan) / 1e6:.1f} MB) and {sidecar_path(engine)} in "
           f"{time.monotonic() - start:.1f} s")
    return sidecar


def write_engine(engine: Path, plan: bytes, sidecar: EngineSidecar, tokenizer: Path | None = None) -> None:
    """Replace engine and sidecar so that no crash leaves an engine beside a sidecar that describes another one;
    `tokenizer` (the model's tokenizer.json) is copied to `engine_tokenizer_path(engine)` with them.

    All are first written to temporary files in the target folder (a full disk fails here and leaves the old set
    alone). Then the old sidecar is removed, the engine and tokenizer renamed into place and the new sidecar renamed
    last: a crash in between leaves an engine without a sidecar, which TrtSession refuses with "rebuild the
    engine"."""
    engine.parent.mkdir(parents=True, exist_ok=True)
    side = sidecar_path(engine)
    targets = [engine, *[engine_tokenizer_path(engine)] * (tokenizer is not None), side]
    staged: list[Path] = []
    try:
        staged.append(stage_file(engine, plan))
        if tokenizer is not None:
            staged.append(stage_file(targets[1], tokenizer.read_bytes()))
        staged.append(stage_file(side, sidecar_text(sidecar).encode()))
        side.unlink(missing_ok=True)
        fsync_dir(engine.parent)
        for tmp, target in zip(staged, targets):
            os.replace(tmp, target)
            fsync_dir(engine.parent)
    except OSError as err:
        raise UserError(f"cannot write engine {engine}: {err}") from None
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)  # only there when writing failed


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
        log_once(_log, logging.WARNING, f"engine {engine}: its sidecar does not record the GPU it was built for; "
                                        f"loading it on {gpu[1]} (compute capability {gpu[0]})")
    elif sidecar.compute_capability != gpu[0]:
        was = f" ({sidecar.gpu_name})" if sidecar.gpu_name else ""
        raise UserError(f"engine {engine} was built for compute capability {sidecar.compute_capability}{was}; this "
                        f"GPU is {gpu[1]} (compute capability {gpu[0]}); {rebuild}")


def resolve_engine_path(engine: str | os.PathLike) -> Path:
    path = Path(engine)
    if path.suffix not in ENGINE_SUFFIXES:
        raise UserError(f"{path} is not an engine file ({' or '.join(ENGINE_SUFFIXES)}); build one with "
                        "`rrwkv-trt build MODEL -o model.plan`")
    if not path.is_file():
        raise UserError(f"engine {path} not found; build it with `rrwkv-trt build MODEL -o {path}`")
    return path


def is_engine_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix in ENGINE_SUFFIXES


def engine_tokenizer_path(engine: str | os.PathLike) -> Path:
    """engine.plan -> engine.plan.tokenizer.json: the model's tokenizer, copied beside the engine by `build`."""
    return Path(os.fspath(engine) + "." + TOKENIZER_FILE)


def engine_tokenizer(engine: str | os.PathLike) -> Path:
    """The tokenizer of an engine, from the engine's own folder only (never from a path its sidecar names, which
    is not trusted): <engine>.tokenizer.json, else a tokenizer.json beside the engine."""
    for path in (engine_tokenizer_path(engine), Path(engine).parent / TOKENIZER_FILE):
        if path.is_file():
            return path
    raise UserError(f"engine {os.fspath(engine)} has no tokenizer beside it; rebuild it with `rrwkv-trt build MODEL "
                    f"-o {os.fspath(engine)}` (which copies MODEL's {TOKENIZER_FILE}), or copy that file to "
                    f"{engine_tokenizer_path(engine)}")
