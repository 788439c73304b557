"""ONNX Runtime (CPU) backend: prefill with `run`, decode with preallocated IOBinding buffers.

onnxruntime is imported lazily so that `import rrwkv_trt.runtime.backends.ort` stays cheap and optional.

The rrwkv custom ops run as fused CPU kernels when the custom-op library librrwkv_ort_ops.so (built by
`make plugins`) is registered, and as the model's FunctionProtos (standard ONNX ops) otherwise. OrtSession
registers the library automatically when `find_custom_ops_library()` finds it; see OrtSession's arguments.

Before ORT sees the model, OrtSession reads its node list and initializers with onnx_reader.read_graph (a protobuf
reader without the onnx package, whose import is slow) and refuses rrwkv nodes whose attributes break their op's
contract: ORT would run them (a WKV4Medium with s = 0 divides by zero in its function body: SIGFPE). ORT's own
errors, at load and at run, become UserErrors naming the model; at run ORT's message names the node.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.paths import BUILD_DIR
from ..logs import log_once
from rrwkv_trt.core.metadata import ModelInfo, from_metadata
from rrwkv_trt.core.names import INPUT_IDS, LOGITS, LOGITS_FROM
from rrwkv_trt.core.ops import DOMAIN
from rrwkv_trt.core.paths import resolve_model_path
from ..onnx_graph import check_rrwkv_attributes
from ..onnx_reader import Graph, read_graph
from ..state import State, allocate_state, validate_state
from .huge_pages import HugePageWeights, huge_pages_available, load_custom_op_weights
from .session import BackendSession

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
# The exceptions onnxruntime raises for a model it cannot load or run (onnxruntime_pybind11_state, 1.32).
_ORT_ERRORS = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
               "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")
CUSTOM_OPS_LIBRARY = "librrwkv_ort_ops.so"

_log = logging.getLogger(__name__)


def custom_ops_search_path() -> list[Path]:
    """Where `find_custom_ops_library` looks, in order: the build/ folder of the source checkout that this
    package is imported from (where `make plugins` writes it). No environment variables are consulted; pass
    an explicit path to OrtSession for a library elsewhere."""
    return [BUILD_DIR / CUSTOM_OPS_LIBRARY]


def find_custom_ops_library() -> Path | None:
    """The first existing librrwkv_ort_ops.so of `custom_ops_search_path()`, or None."""
    return next((p for p in custom_ops_search_path() if p.is_file()), None)


# ORT's memory patterns plan one block for all of a run's activations per input shape, kept beside the arena: a
# higher peak RSS, with decode and prefill speed unchanged within the noise (A/B; measured: README "Speed on the
# edge CPU", Memory).
DEFAULT_SESSION_OPTIONS = {"enable_mem_pattern": False}
# `run` feeds longer prompts in chunks of this many tokens, the state carried from one to the next: the activations
# of a 128-token chunk, not of the whole prompt, are what the arena must hold: a lower peak for long prompts at
# the same speed (measured: README "Speed on the edge CPU", Memory).
PREFILL_CHUNK = 128


class OrtSession(BackendSession):
    """One exported model on ONNX Runtime's CPU provider.

    Args:
        model: an export OUT_DIR or a model.onnx path.
        threads: intra-op threads; None keeps ORT's default.
        custom_ops_library: path of the custom-op library (librrwkv_ort_ops.so) to register; None looks it up
            with `find_custom_ops_library()` (the checkout's build/ folder) and, when it is not there, runs the
            model's rrwkv FunctionProtos with stock ORT (logging a warning once).
        use_custom_ops: False never registers a library: the FunctionProtos run (a reference path; a model
            whose functions were stripped then fails to load).
        session_options: SessionOptions to change from DEFAULT_SESSION_OPTIONS over ORT's defaults: an attribute
            name ("enable_mem_pattern": True, "graph_optimization_level": "ORT_ENABLE_BASIC") or a session config
            key with a dot ("session.intra_op.allow_spinning": "0"). None keeps the defaults, which
            `scripts/ort_options_sweep.py` found best on the 169M RWKV-4: no option beat them beyond the run-to-run
            noise (measured: README "Speed on the edge CPU", fp32 decode).

        prefill_chunk: the most tokens per sequence that `run` feeds in one call (PREFILL_CHUNK); None feeds
            the whole prompt at once.
        huge_pages: with the custom ops registered, read the weights that only rrwkv kernels use (MatMulW8's,
            MatMulWF16's) from the external data into 2 MiB pages instead of letting ORT map the file (huge_pages.py:
            fewer TLB misses, a faster int8 decode step; measured: README "Speed on the edge CPU", Huge pages);
            False keeps ORT's mapping, which other processes share.

    Attributes:
        custom_ops_library: the registered library's path, or None when the function bodies run.
        huge_page_bytes: bytes of weights held in the huge-page buffer (0: none, ORT maps them all).
    """

    def __init__(self, model: str | os.PathLike, threads: int | None = None,
                 custom_ops_library: str | os.PathLike | None = None, use_custom_ops: bool = True,
                 session_options: dict | None = None, prefill_chunk: int | None = PREFILL_CHUNK,
                 huge_pages: bool = True) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        self.path = resolve_model_path(model)
        if prefill_chunk is not None and (not isinstance(prefill_chunk, int) or prefill_chunk < 1):
            raise UserError(f"prefill_chunk must be an int >= 1 (or None: no chunking), got {prefill_chunk!r}")
        self.prefill_chunk = prefill_chunk
        so = make_session_options(ort, DEFAULT_SESSION_OPTIONS | (session_options or {}))
        if threads is not None:
            if threads < 1:
                raise UserError(f"threads must be >= 1 (or unset for ORT's default), got {threads}")
            so.intra_op_num_threads = threads
        self.custom_ops_library = self._resolve_custom_ops(custom_ops_library, use_custom_ops)
        if self.custom_ops_library is not None:
            register_custom_ops(so, self.custom_ops_library)
        graph = read_graph(self.path)
        for node in graph.nodes:
            if node.domain == DOMAIN:
                check_rrwkv_attributes(node, str(self.path))
        self._weights = self._huge_page_weights(ort, so, graph) if huge_pages and self.custom_ops_library else None
        self.huge_page_bytes = self._weights[0].nbytes if self._weights else 0
        self._ort_errors = tuple(getattr(ort_errors, name) for name in _ORT_ERRORS)
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=so, providers=["CPUExecutionProvider"])
        except self._ort_errors as err:
            hint = ""
            if self.custom_ops_library is None and "rrwkv" in str(err):
                hint = (f"; the model needs the rrwkv custom ops: build {CUSTOM_OPS_LIBRARY} with `make plugins` "
                        f"(searched {[str(p) for p in custom_ops_search_path()]})"
                        + ("" if use_custom_ops else " and do not disable custom ops"))
            raise UserError(f"onnxruntime cannot load {self.path}: {err}{hint}") from None
        self._ort = ort
        self.info: ModelInfo = from_metadata(self._sess.get_modelmeta().custom_metadata_map, source=str(self.path))
        self.spec = self.info.state
        self.vocab_size = self.info.config.vocab_size
        self._check_io()
        self._decode: _DecodeBuffers | None = None  # made by start_decode

    @staticmethod
    def _resolve_custom_ops(library: str | os.PathLike | None, use_custom_ops: bool) -> Path | None:
        if not use_custom_ops:
            if library is not None:
                raise UserError("custom_ops_library was given together with use_custom_ops=False; pass one of them")
            log_once(_log, logging.INFO, "rrwkv custom ops disabled: running the models' rrwkv function bodies")
            return None
        if library is not None:
            path = Path(library)
            log_once(_log, logging.INFO, f"rrwkv custom ops: {path}")
            return path
        found = find_custom_ops_library()
        if found is None:
            log_once(_log, logging.WARNING,
                     f"{CUSTOM_OPS_LIBRARY} not found in {[str(p) for p in custom_ops_search_path()]}; running the "
                     "models' rrwkv function bodies (slower); run `make plugins` to build the fused CPU kernels")
        else:
            log_once(_log, logging.INFO, f"rrwkv custom ops: {found}")
        return found

    def _huge_page_weights(self, ort, so, graph: Graph) -> tuple[HugePageWeights, list] | None:
        """Load the rrwkv-only weights into huge pages and add them to `so` (None: the export lists none)."""
        if not huge_pages_available():
            return None
        weights = load_custom_op_weights(self.path, graph)
        if weights is None:
            return None
        values = [ort.OrtValue.ortvalue_from_numpy(a) for a in weights.arrays.values()]
        for name, value in zip(weights.arrays, values):
            so.add_initializer(name, value)
        return weights, values  # both must outlive the session

    def close(self) -> None:
        """Release the ORT session, decode buffers and weights; the object is unusable afterwards."""
        self._decode = None
        self._sess = None
        self._weights = None

    def run(self, input_ids: np.ndarray, state: State | None = None,
            last_only: bool = False) -> tuple[np.ndarray, State]:
        """Run T tokens per sequence from `state` (prefill; allocates its outputs), in calls of at most
        `prefill_chunk` tokens (and of the model's `max_call_tokens`), each starting from the state the previous one
        returned.

        Args:
            input_ids: [B, T] integer token ids, T >= 1.
            state: {state_in.* name: array}; None starts from the initial state.
            last_only: return the last position's logits only, all a prefill needs; models with the
                logits_from input then skip the head for the other positions.
        Returns:
            logits [B, T, V] ([B, 1, V] with last_only) and the new state, keyed by state_in.* names so it can
            be passed back in.
        """
        ids, state = self._prefill_inputs(input_ids, state)
        limits = [n for n in (self.prefill_chunk, self.info.config.max_call_tokens) if n is not None]
        chunk = min(limits, default=ids.shape[1])  # a model's max_call_tokens is a limit of its graph
        pieces = []
        for start in range(0, ids.shape[1], chunk):
            last = start + chunk >= ids.shape[1]
            logits, state = self._run_once(ids[:, start:start + chunk], state, last_only)
            if last or not last_only:
                pieces.append(logits)
        return (pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)), state

    def _run_once(self, ids: np.ndarray, state: State, last_only: bool) -> tuple[np.ndarray, State]:
        """One session call over ids [B, T] from `state`."""
        feed = {INPUT_IDS: np.ascontiguousarray(ids), **{name: np.ascontiguousarray(v) for name, v in state.items()}}
        if self.has_logits_from:
            feed[LOGITS_FROM] = np.array([ids.shape[1] - 1 if last_only else 0], dtype=np.int64)
        session = self._live()
        with self._run_errors():
            outputs = session.run(self._output_names, feed)
        new_state = {t.input_name: out for t, out in zip(self.spec.tensors(), outputs[1:])}
        self._check_outputs(outputs[0], new_state, ids.shape[0])
        logits = outputs[0][:, -1:] if last_only and not self.has_logits_from else outputs[0]
        return logits, new_state

    def _check_outputs(self, logits: np.ndarray, state: State, batch: int) -> None:
        """A model whose graph was edited (an attribute that still fits its weights) can compute outputs its
        metadata does not describe; catch that here rather than hand a caller wrongly shaped logits or state."""
        if logits.ndim != 3 or logits.shape[0] != batch or logits.shape[2] != self.vocab_size:
            raise UserError(f"{self.path} computed logits of shape {list(logits.shape)}, its metadata says "
                            f"[{batch}, T, {self.vocab_size}]; the graph does not match its metadata: re-export it")
        validate_state(self.spec, state, batch, source=f"the state {self.path} computed")

    def _new_decode(self, batch: int) -> _DecodeBuffers:
        return _DecodeBuffers(self, batch)

    @contextmanager
    def _run_errors(self) -> Iterator[None]:
        """ORT's errors while running the model as a UserError (ORT's message names the failing node). A kernel
        that fails (a status, not an exception) reaches Python as a plain RuntimeError "Error in execution: ..."."""
        try:
            yield
        except (*self._ort_errors, RuntimeError) as err:
            raise UserError(f"onnxruntime failed to run {self.path}: {err}") from None

    def _live(self):
        if self._sess is None:
            raise RuntimeError(f"OrtSession for {self.path} is closed")
        return self._sess

    def _check_io(self) -> None:
        inputs = [i.name for i in self._sess.get_inputs()]
        outputs = [o.name for o in self._sess.get_outputs()]
        self.has_logits_from = LOGITS_FROM in inputs  # exports before 2026-12 lack it
        want_in = [INPUT_IDS, *[LOGITS_FROM] * self.has_logits_from, *self.spec.input_names()]
        self._output_names = [LOGITS, *self.spec.output_names()]
        for kind, have, want in (("inputs", inputs, want_in), ("outputs", outputs, self._output_names)):
            missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            if missing or extra:
                raise UserError(f"{self.path}: graph {kind} do not match its rrwkv.state_spec metadata (missing "
                                f"{missing[:4]}, unexpected {extra[:4]}); re-export the model")
        logits = self._sess.get_outputs()[outputs.index(LOGITS)]
        if isinstance(logits.shape[-1], int) and logits.shape[-1] != self.vocab_size:
            raise UserError(f"{self.path}: logits have {logits.shape[-1]} columns, metadata vocab_size is "
                            f"{self.vocab_size}; re-export the model")
        logits_type = logits.type
        if logits_type not in _ORT_DTYPES:
            raise UserError(f"{self.path}: logits have type {logits_type}, expected one of {sorted(_ORT_DTYPES)}")
        self.logits_dtype = np.dtype(_ORT_DTYPES[logits_type])


class _DecodeBuffers:
    """Token, logits and two state sets for one batch size; step k reads set k%2 and writes the other.

    OrtValues wrap the numpy arrays without copying, so writing the token array in place feeds ORT.
    """

    def __init__(self, session: OrtSession, batch: int) -> None:
        ort, spec = session._ort, session.spec
        self.session, self.batch = session, batch
        self.names = spec.input_names()
        self.tokens = np.zeros((batch, 1), dtype=np.int64)  # [B, 1]
        self.logits = np.zeros((batch, 1, session.vocab_size), dtype=session.logits_dtype)  # [B, 1, V]
        self.logits_row = self.logits[:, 0, :]  # [B, V] view returned by step
        self.sets = [allocate_state(spec, batch) for _ in range(2)]
        as_ort = ort.OrtValue.ortvalue_from_numpy
        # The OrtValues must outlive the bindings; logits_from stays 0: a step's one position.
        self._keep = [as_ort(self.tokens), as_ort(self.logits), as_ort(np.zeros(1, dtype=np.int64))]
        self.bindings = []
        for k in range(2):
            src, dst = self.sets[k], self.sets[1 - k]
            binding = session._live().io_binding()
            binding.bind_ortvalue_input(INPUT_IDS, self._keep[0])
            binding.bind_ortvalue_output(LOGITS, self._keep[1])
            if session.has_logits_from:
                binding.bind_ortvalue_input(LOGITS_FROM, self._keep[2])
            for t in spec.tensors():
                vin, vout = as_ort(src[t.input_name]), as_ort(dst[t.input_name])
                self._keep += [vin, vout]
                binding.bind_ortvalue_input(t.input_name, vin)
                binding.bind_ortvalue_output(t.output_name, vout)
            self.bindings.append(binding)
        self.current = 0  # index of the set holding the live state

    def load(self, state: State) -> None:
        self.current = 0
        for name in self.names:
            np.copyto(self.sets[0][name], state[name])

    def step(self, ids: np.ndarray) -> np.ndarray:
        if ids.shape[0] != self.batch:
            raise UserError(f"step() got {ids.shape[0]} token ids, the decode state holds batch {self.batch}")
        self.tokens[:, 0] = ids
        session = self.session._live()
        with self.session._run_errors():
            session.run_with_iobinding(self.bindings[self.current])
        self.current = 1 - self.current
        return self.logits_row

    def snapshot(self) -> State:
        live = self.sets[self.current]
        return {name: live[name].copy() for name in self.names}


def register_custom_ops(so, library: str | os.PathLike) -> None:
    """Register an ORT custom-op library (e.g. librrwkv_ort_ops.so) on SessionOptions `so`."""
    path = Path(library)
    if not path.is_file():
        raise UserError(f"custom-op library {path} not found; build it with `make plugins` or pass its path")
    so.register_custom_ops_library(str(path.resolve()))


def make_session_options(ort, options: dict):
    """SessionOptions with `options` applied: "a.b" keys are session config entries (string values), other keys
    SessionOptions attributes (a GraphOptimizationLevel / ExecutionMode may be given by its name)."""
    so = ort.SessionOptions()
    for key, value in options.items():
        if "." in key:
            so.add_session_config_entry(key, str(value))
            continue
        if not hasattr(so, key):
            raise UserError(f"unknown ONNX Runtime SessionOptions attribute {key!r}")
        enum = {"graph_optimization_level": ort.GraphOptimizationLevel, "execution_mode": ort.ExecutionMode}.get(key)
        if enum is not None and isinstance(value, str):
            if not hasattr(enum, value):
                raise UserError(f"{key} {value!r} is not one of {sorted(n for n in enum.__members__)}")
            value = getattr(enum, value)
        setattr(so, key, value)
    return so
