"""TensorRT (GPU) backend: an engine built by `rrwkv-trt build`, with the state kept on the device between steps.

`tensorrt` and `cuda-python` are imported lazily, inside TrtSession (GPU hosts: `pip install 'rrwkv-trt[trt]'`).

TrtSession mirrors OrtSession: `run` (prefill, allocates), `start_decode` / `step` / `decode_state`. The engine has
two optimisation profiles (runtime.engine.PROFILES): prefill (seq 1..max_seq) runs on one execution context, decode
(seq 1) on another. Decode state lives in two device buffer sets; step k reads set k % 2 and writes the other, so
the only host traffic per token is the token ids in and the logits out, both through pinned buffers. With
`cuda_graph=True` each of the two directions is captured once as a CUDA graph (ids in, engine, logits out).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..engine import PROFILES, check_engine_compatible, gpu_compute_capability, resolve_engine_path
from rrwkv_trt.core.errors import UserError
from ..logs import log_once
from rrwkv_trt.core.metadata import ModelInfo, file_sha256
from rrwkv_trt.core.paths import BUILD_DIR
from rrwkv_trt.core.sidecar import EngineSidecar, read_sidecar, sidecar_path
from rrwkv_trt.core.names import INPUT_IDS, LOGITS
from ..state import State
from ..trt_loader import (
    find_plugin_library,
    import_tensorrt,
    is_file,
    load_plugin_library,
    take_errors,
    tensorrt_product,
    trt_logger,
)
from .cuda_runtime import CudaRuntime, import_cudart, pinned_array
from .session import BackendSession

_log = logging.getLogger(__name__)


def _import_modules():
    """(tensorrt, cudart); tests replace this to drive TrtSession with stand-ins."""
    return import_tensorrt(), import_cudart()


class TrtSession(BackendSession):
    """One TensorRT engine (built by `rrwkv-trt build`) on the current CUDA device.

    Args:
        engine: the .plan / .engine file; its sidecar <engine>.json must sit beside it.
        plugin_library: librrwkv_trt_plugins_dyn.so; None takes the one recorded in the sidecar when it still
            exists, else `runtime.trt_loader.plugin_search_path()`. Loaded once per process.
        cuda_graph: capture each decode step direction as a CUDA graph (falls back, with a warning, when the
            engine cannot be captured).

    Attributes:
        info, spec, vocab_size: from the sidecar, as on OrtSession; sidecar: the whole EngineSidecar;
        plugin_library: the loaded library's path; logits_dtype: numpy dtype of the logits.
    """

    def __init__(self, engine: str | os.PathLike, plugin_library: str | os.PathLike | None = None,
                 cuda_graph: bool = False) -> None:
        self._cuda: CudaRuntime | None = None
        self._device_buffers: list[int] = []
        self._decode: _DecodeBuffers | None = None
        self.path = resolve_engine_path(engine)
        self.sidecar: EngineSidecar = read_sidecar(self.path)
        self.info: ModelInfo = self.sidecar.info
        self.spec = self.info.state
        self.vocab_size = self.info.config.vocab_size
        self.cuda_graph = cuda_graph
        size = self.path.stat().st_size
        if size != self.sidecar.engine_bytes:
            raise UserError(f"engine {self.path} has {size} bytes but its sidecar describes one of "
                            f"{self.sidecar.engine_bytes}; the two do not belong together: rebuild the engine with "
                            "`rrwkv-trt build`")
        trt, cudart = _import_modules()
        product, version = tensorrt_product(trt)
        check_engine_compatible(self.path, self.sidecar, product, version, gpu_compute_capability())
        self.plugin_library = load_plugin_library(trt, self._choose_library(plugin_library))
        self._trt = trt
        self._cuda = CudaRuntime(cudart)
        self._stream = self._cuda.stream_create()
        self._runtime = trt.Runtime(trt_logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise UserError(f"{product} {version} could not deserialise engine {self.path} ({take_errors(trt)}); "
                            "rebuild the engine with `rrwkv-trt build`")
        self._check_io()
        self._contexts = {name: self._context(index) for name, index in PROFILES.items()}

    def _choose_library(self, library: str | os.PathLike | None) -> Path:
        """The plugin library to load, checked before it is loaded: native code runs only from a place the user
        chose. That is `library` (--plugin-library), the library the sidecar records if it sits in the engine's
        folder or in build/ and still has the recorded sha256, or, when the recorded file is gone, build/'s."""
        recorded = self.path.parent / self.sidecar.plugin_library  # a relative path counts from the engine's folder
        if library is None and is_file(recorded):
            return self._recorded_library(recorded)
        path = find_plugin_library(library)
        if file_sha256(path) != self.sidecar.plugin_sha256:
            log_once(_log, logging.WARNING,
                     f"plugin library {path} differs from the one engine {self.path} was built with "
                     f"({self.sidecar.plugin_library}, sha256 {self.sidecar.plugin_sha256[:12]}...); rebuild the "
                     "engine if the plugins changed")
        return path

    def _recorded_library(self, recorded: Path) -> Path:
        """The sidecar's plugin library, or UserError.

        The sidecar is only a JSON file beside the engine: whoever can edit it must not be able to make this
        process load a library of their choice, so its path counts only inside the engine's folder or build/
        (symlinks resolved) and only with the sha256 the build recorded."""
        path = recorded.resolve()  # exists (is_file followed any symlinks), so this cannot loop
        where = f"engine sidecar {sidecar_path(self.path)}"
        fix = (f"if you trust {path}, pass it with --plugin-library {path}; otherwise rebuild the engine with "
               f"`rrwkv-trt build {self.sidecar.source_model} -o {self.path}`")
        if path.parent not in (self.path.parent.resolve(), BUILD_DIR.resolve()):
            raise UserError(f"{where} names plugin library {path}, which is neither in the engine's folder nor in "
                            f"{BUILD_DIR}, the only places a sidecar may load native code from; {fix}")
        digest = file_sha256(path)
        if digest != self.sidecar.plugin_sha256:
            raise UserError(f"plugin library {path} has sha256 {digest[:12]}..., not the "
                            f"{self.sidecar.plugin_sha256[:12]}... that {where} recorded: it is not the library the "
                            f"engine was built with; {fix}")
        return path

    def _context(self, profile: int):
        trt = self._trt
        strategy = getattr(trt, "ExecutionContextAllocationStrategy", None)
        if strategy is not None and hasattr(strategy, "ON_PROFILE_CHANGE"):
            context = self._engine.create_execution_context(strategy.ON_PROFILE_CHANGE)
        else:
            context = self._engine.create_execution_context()
        if context is None:
            raise UserError(f"TensorRT could not create an execution context for {self.path} (out of memory?)")
        context.set_optimization_profile_async(profile, int(self._stream))
        self._cuda.sync(self._stream)
        return context

    def _check_io(self) -> None:
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        want_in, want_out = [INPUT_IDS, *self.spec.input_names()], [LOGITS, *self.spec.output_names()]
        for kind, have, want in (("inputs", inputs, want_in), ("outputs", outputs, want_out)):
            missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            if missing or extra:
                raise UserError(f"engine {self.path}: {kind} do not match its sidecar's state spec (missing "
                                f"{missing[:4]}, unexpected {extra[:4]}); rebuild the engine")
        if engine.num_optimization_profiles != len(PROFILES):
            raise UserError(f"engine {self.path} has {engine.num_optimization_profiles} optimisation profiles, "
                            f"expected {len(PROFILES)} {sorted(PROFILES)}; rebuild it with `rrwkv-trt build`")
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        for t in self.spec.tensors():
            for name in (t.input_name, t.output_name):
                if self._dtypes[name] != np.dtype(t.slot.dtype):
                    raise UserError(f"engine {self.path}: {name} is {self._dtypes[name]}, the state spec says "
                                    f"{t.slot.dtype}; rebuild the engine")
        if self._dtypes[INPUT_IDS] != np.int64:
            raise UserError(f"engine {self.path}: input_ids is {self._dtypes[INPUT_IDS]}, expected int64; re-export")
        vocab = tuple(engine.get_tensor_shape(LOGITS))[-1]
        if vocab not in (-1, self.vocab_size):
            raise UserError(f"engine {self.path}: logits have {vocab} columns, the sidecar's vocab_size is "
                            f"{self.vocab_size}; rebuild the engine")
        self.logits_dtype = self._dtypes[LOGITS]

    def __del__(self) -> None:
        if getattr(self, "_cuda", None) is not None:
            try:
                self.close()
            except Exception:  # interpreter shutdown: the CUDA bindings may already be gone
                pass

    def close(self) -> None:
        """Free the device buffers, graphs, contexts, engine and stream; the object is unusable afterwards."""
        cuda, self._cuda = self._cuda, None
        if cuda is None:
            return
        cuda.sync(self._stream)
        if self._decode is not None:
            self._decode.release(cuda)
            self._decode = None
        self._contexts = {}
        self._engine = None
        self._runtime = None
        cuda.stream_destroy(self._stream)

    def run(self, input_ids: np.ndarray, state: State | None = None,
            last_only: bool = False) -> tuple[np.ndarray, State]:
        """Run T tokens per sequence from `state` (prefill; allocates). T > max_seq runs in max_seq chunks.

        Args:
            input_ids: [B, T] integer token ids, T >= 1, B <= the engine's max_batch.
            state: {state_in.* name: array}; None starts from the initial state.
            last_only: return the last position's logits only ([B, 1, V]); the engine computes them all (its
                logits_from input was frozen to 0 at build time, onnx_graph.freeze_logits_from).
        Returns:
            logits [B, T, V] and the new state, keyed by state_in.* names.
        """
        cuda = self._live()
        ids, state = self._prefill_inputs(input_ids, state)
        batch, seq = ids.shape
        chunk = min(seq, self.sidecar.max_seq)
        tensors = self.spec.tensors()
        logits = np.empty((batch, seq, self.vocab_size), self.logits_dtype)  # [B, T, V]
        host_logits = np.empty(batch * chunk * self.vocab_size, self.logits_dtype)  # one chunk's [B, t, V]
        sets = [{t.input_name: cuda.malloc(state[t.input_name].nbytes) for t in tensors} for _ in range(2)]
        ids_dev, logits_dev = cuda.malloc(batch * chunk * 8), cuda.malloc(host_logits.nbytes)
        context = self._contexts["prefill"]
        try:
            for t in tensors:
                value = np.ascontiguousarray(state[t.input_name])
                cuda.copy(sets[0][t.input_name], value.ctypes.data, value.nbytes, "htod", self._stream)
                _set_shape(context, t.input_name, value.shape)
            cuda.sync(self._stream)
            current = 0
            for start in range(0, seq, chunk):
                part = np.ascontiguousarray(ids[:, start:start + chunk])  # [B, t]
                t_len = part.shape[1]
                cuda.copy(ids_dev, part.ctypes.data, part.nbytes, "htod", self._stream)
                _set_shape(context, INPUT_IDS, part.shape)
                context.set_tensor_address(INPUT_IDS, ids_dev)
                context.set_tensor_address(LOGITS, logits_dev)
                for t in tensors:
                    context.set_tensor_address(t.input_name, sets[current][t.input_name])
                    context.set_tensor_address(t.output_name, sets[1 - current][t.input_name])
                if not context.execute_async_v3(int(self._stream)):
                    raise UserError(f"TensorRT failed to run {self.path} (prefill, shape {list(part.shape)}): "
                                       f"{take_errors(self._trt)}")
                n = batch * t_len * self.vocab_size
                cuda.copy(host_logits.ctypes.data, logits_dev, n * host_logits.itemsize, "dtoh", self._stream)
                cuda.sync(self._stream)
                logits[:, start:start + t_len] = host_logits[:n].reshape(batch, t_len, self.vocab_size)
                current = 1 - current
            new_state = {}
            for t in tensors:
                value = np.empty(state[t.input_name].shape, dtype=t.slot.dtype)
                cuda.copy(value.ctypes.data, sets[current][t.input_name], value.nbytes, "dtoh", self._stream)
                new_state[t.input_name] = value
            cuda.sync(self._stream)
        finally:
            cuda.sync(self._stream)
            for ptr in [ids_dev, logits_dev, *sets[0].values(), *sets[1].values()]:
                cuda.free(ptr)
        return (logits[:, -1:] if last_only else logits), new_state

    def _new_decode(self, batch: int) -> _DecodeBuffers:
        return _DecodeBuffers(self, batch)

    def _drop_decode(self) -> None:
        if self._decode is not None:
            self._decode.release(self._cuda)
            self._decode = None

    def _live(self) -> CudaRuntime:
        if self._cuda is None:
            raise RuntimeError(f"TrtSession for {self.path} is closed")
        return self._cuda

    def _check_batch(self, batch: int) -> None:
        if batch > self.sidecar.max_batch:
            raise UserError(f"batch {batch} exceeds engine {self.path}'s max batch {self.sidecar.max_batch}; rebuild "
                            f"it with `rrwkv-trt build ... --max-batch {batch}`")


class _DecodeBuffers:
    """Pinned token ids and logits, device ids and logits, two device state sets; step k reads set k % 2."""

    def __init__(self, session: TrtSession, batch: int) -> None:
        self.session, self.batch = session, batch
        self.tensors = session.spec.tensors()
        self._host_ptrs: list[int] = []
        self._dev_ptrs: list[int] = []
        self.graphs: list[object | None] = [None, None]
        self.use_graph = session.cuda_graph
        self.tokens = self._pinned((batch, 1), np.int64)  # [B, 1]
        self.logits = self._pinned((batch, 1, session.vocab_size), session.logits_dtype)  # [B, 1, V]
        self.logits_row = self.logits[:, 0, :]  # [B, V] view returned by step
        self.tokens_dev = self._device(self.tokens.nbytes)
        self.logits_dev = self._device(self.logits.nbytes)
        self.shapes = {t.input_name: session.spec.concrete_shape(t.slot, batch) for t in self.tensors}
        self.nbytes = {t.input_name: int(np.prod(self.shapes[t.input_name])) * np.dtype(t.slot.dtype).itemsize
                       for t in self.tensors}
        self.sets = [{name: self._device(n) for name, n in self.nbytes.items()} for _ in range(2)]
        self.context = session._contexts["decode"]
        _set_shape(self.context, INPUT_IDS, (batch, 1))
        for name, shape in self.shapes.items():
            _set_shape(self.context, name, shape)
        self.current = 0  # index of the set holding the live state

    def _pinned(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = self.session._cuda.malloc_host(nbytes)
        self._host_ptrs.append(ptr)
        return pinned_array(ptr, shape, np.dtype(dtype))

    def _device(self, nbytes: int) -> int:
        ptr = self.session._cuda.malloc(nbytes)
        self._dev_ptrs.append(ptr)
        return ptr

    def load(self, state: State) -> None:
        cuda, stream = self.session._cuda, self.session._stream
        self.current = 0
        for t in self.tensors:
            value = np.ascontiguousarray(state[t.input_name])
            cuda.copy(self.sets[0][t.input_name], value.ctypes.data, value.nbytes, "htod", stream)
        cuda.sync(stream)

    def _bind(self, k: int) -> None:
        context = self.context
        context.set_tensor_address(INPUT_IDS, self.tokens_dev)
        context.set_tensor_address(LOGITS, self.logits_dev)
        for t in self.tensors:
            context.set_tensor_address(t.input_name, self.sets[k][t.input_name])
            context.set_tensor_address(t.output_name, self.sets[1 - k][t.input_name])

    def _enqueue(self) -> None:
        """ids in, engine, logits out, all asynchronous on the session's stream (also what a graph captures)."""
        cuda, stream = self.session._cuda, self.session._stream
        cuda.copy(self.tokens_dev, self.tokens.ctypes.data, self.tokens.nbytes, "htod", stream)
        if not self.context.execute_async_v3(int(stream)):
            raise UserError(f"TensorRT failed to run {self.session.path} (decode step, batch {self.batch}): "
                               f"{take_errors(self.session._trt)}")
        cuda.copy(self.logits.ctypes.data, self.logits_dev, self.logits.nbytes, "dtoh", stream)

    def _graph(self, k: int):
        """The CUDA graph of direction k, captured on first use; None when the engine cannot be captured."""
        if self.graphs[k] is None and self.use_graph:
            cuda, stream = self.session._cuda, self.session._stream
            self._bind(k)
            capturable = getattr(self.context, "is_stream_capturable", None)
            if capturable is not None and not capturable(int(stream)):
                log_once(_log, logging.WARNING,
                         f"engine {self.session.path} cannot be captured in a CUDA graph; decoding without one")
                self.use_graph = False
                return None
            # TensorRT wants one enqueue before capture (lazy setup); it reads set k and writes the other set
            # and the logits, all of which the real step then overwrites.
            self._enqueue()
            cuda.sync(stream)
            self.graphs[k] = cuda.capture(stream, self._enqueue)
        return self.graphs[k]

    def step(self, ids: np.ndarray) -> np.ndarray:
        if ids.shape[0] != self.batch:
            raise UserError(f"step() got {ids.shape[0]} token ids, the decode state holds batch {self.batch}")
        cuda, stream = self.session._cuda, self.session._stream
        self.tokens[:, 0] = ids
        graph = self._graph(self.current)
        if graph is not None:
            cuda.launch(graph, stream)
        else:
            self._bind(self.current)
            self._enqueue()
        cuda.sync(stream)
        self.current = 1 - self.current
        return self.logits_row

    def snapshot(self) -> State:
        cuda, stream = self.session._cuda, self.session._stream
        out = {}
        for t in self.tensors:
            value = np.empty(self.shapes[t.input_name], dtype=t.slot.dtype)
            cuda.copy(value.ctypes.data, self.sets[self.current][t.input_name], value.nbytes, "dtoh", stream)
            out[t.input_name] = value
        cuda.sync(stream)
        return out

    def release(self, cuda: CudaRuntime) -> None:
        cuda.sync(self.session._stream)
        for graph in self.graphs:
            if graph is not None:
                cuda.graph_destroy(graph)
        self.graphs = [None, None]
        for ptr in self._dev_ptrs:
            cuda.free(ptr)
        for ptr in self._host_ptrs:
            cuda.free_host(ptr)
        self._dev_ptrs, self._host_ptrs = [], []


def _set_shape(context, name: str, shape: tuple[int, ...]) -> None:
    if not context.set_input_shape(name, tuple(shape)):
        raise UserError(f"TensorRT rejected shape {list(shape)} for {name} (outside the engine's profile?)")
