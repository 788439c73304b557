"""Stand-ins for `tensorrt` and cuda-python's `cudart` that drive TrtSession on the CPU (no GPU here).

Device memory is host memory (ctypes buffers, pointers are their addresses). The "engine" file is an ONNX model
that onnxruntime runs whenever a context executes, reading its inputs from and writing its outputs to the bound
addresses. The fakes check what real TensorRT and CUDA would require of the caller:
- each context runs with its own optimisation profile, whose shape ranges are enforced (decode: seq == 1);
- every I/O tensor has a shape (inputs) and an address before execution;
- a captured CUDA graph replays the copies and executions with the addresses bound at capture time.
"""
from __future__ import annotations

import ctypes
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
from rrwkv_trt.core.ops import OP_NAMES


class _Stream:
    def __init__(self, handle: int) -> None:
        self.handle, self.capture = handle, None

    def __int__(self) -> int:
        return self.handle


class FakeCudart:
    """The cudart calls TrtSession makes; errors are 0 (success). Keeps live allocations to check for leaks."""

    cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2, cudaMemcpyDeviceToDevice=3)
    cudaStreamCaptureMode = SimpleNamespace(cudaStreamCaptureModeThreadLocal=1, cudaStreamCaptureModeGlobal=0)

    def __init__(self) -> None:
        self.device: dict[int, ctypes.Array] = {}
        self.host: dict[int, ctypes.Array] = {}
        self.streams: dict[int, SimpleNamespace] = {}
        self.graph_launches = 0
        self.captures = 0

    def _alloc(self, pool, nbytes):
        buf = ctypes.create_string_buffer(nbytes)
        ctypes.memset(buf, 0x7F, nbytes)  # poison: reading unwritten memory gives garbage, not zeros
        pool[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaMalloc(self, nbytes):
        return self._alloc(self.device, nbytes)

    def cudaMallocHost(self, nbytes):
        return self._alloc(self.host, nbytes)

    def cudaFree(self, ptr):
        del self.device[ptr]
        return (0,)

    def cudaFreeHost(self, ptr):
        del self.host[ptr]
        return (0,)

    def cudaGetErrorString(self, err):
        return 0, b"fake error"

    def cudaStreamCreate(self):
        stream = _Stream(1000 + len(self.streams))
        self.streams[stream.handle] = stream
        return 0, stream

    def cudaStreamDestroy(self, stream):
        del self.streams[int(stream)]
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def submit(self, stream_handle: int, op) -> None:
        """Run `op` now, or record it when the stream is being captured."""
        stream = self.streams[int(stream_handle)]
        if stream.capture is not None:
            stream.capture.append(op)
        else:
            op()

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        self.submit(stream, lambda: ctypes.memmove(dst, src, nbytes))
        return (0,)

    def cudaStreamBeginCapture(self, stream, mode):
        stream.capture = []
        return (0,)

    def cudaStreamEndCapture(self, stream):
        ops, stream.capture = stream.capture, None
        self.captures += 1
        return 0, SimpleNamespace(ops=ops)

    def cudaGraphInstantiate(self, graph, flags):
        return 0, SimpleNamespace(ops=list(graph.ops))

    def cudaGraphLaunch(self, graph_exec, stream):
        self.graph_launches += 1
        for op in graph_exec.ops:
            self.submit(stream, op)
        return (0,)

    def cudaGraphDestroy(self, graph):
        return (0,)

    def cudaGraphExecDestroy(self, graph_exec):
        return (0,)


class _Creator:
    def __init__(self, name):
        self.name, self.plugin_version, self.plugin_namespace = name, "1", "rrwkv"


class FakeTensorRT:
    """A module-like `tensorrt`: registry, logger, Runtime -> engine -> execution contexts over onnxruntime."""

    __name__ = "tensorrt"
    __version__ = "10.99.0"
    TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    ExecutionContextAllocationStrategy = SimpleNamespace(ON_PROFILE_CHANGE="ON_PROFILE_CHANGE", STATIC="STATIC")

    class ILogger:
        Severity = SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self):
            pass

    def __init__(self, cudart: FakeCudart, max_batch: int, max_seq: int) -> None:
        self.cudart = cudart
        self.profiles = [((1, 1), (max_batch, 1)), ((1, 1), (max_batch, max_seq))]  # input_ids min/max per profile
        self.loaded: list[str] = []
        self.executions: list[tuple[int, tuple]] = []  # (profile, input_ids shape) per execution
        self.contexts: list[FakeContext] = []
        registry = SimpleNamespace(all_creators=[])

        def load_library(path):
            self.loaded.append(path)
            registry.all_creators += [_Creator(name) for name in OP_NAMES]  # what librrwkv_trt_plugins_dyn.so registers
            return object()

        registry.load_library = load_library
        self._registry = registry

    def get_plugin_registry(self):
        return self._registry

    @staticmethod
    def nptype(dtype):
        return dtype

    def Runtime(self, logger):  # noqa: N802 - TensorRT's name
        return SimpleNamespace(deserialize_cuda_engine=lambda data: FakeEngine(self, data))


class FakeEngine:
    def __init__(self, trt: FakeTensorRT, data: bytes) -> None:
        self.trt = trt
        self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        types = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16),
                 "tensor(int64)": np.dtype(np.int64)}
        self.io = {}
        for mode, items in (("INPUT", self.session.get_inputs()), ("OUTPUT", self.session.get_outputs())):
            for item in items:
                shape = tuple(d if isinstance(d, int) else -1 for d in item.shape)
                self.io[item.name] = (mode, types[item.type], shape)
        self.names = list(self.io)
        self.num_io_tensors = len(self.names)
        self.num_optimization_profiles = 2

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return self.io[name][0]

    def get_tensor_dtype(self, name):
        return self.io[name][1]

    def get_tensor_shape(self, name):
        return self.io[name][2]

    def create_execution_context(self, strategy=None):
        context = FakeContext(self)
        self.trt.contexts.append(context)
        return context


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.profile = None
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}

    def set_optimization_profile_async(self, profile, stream):
        assert self.profile is None, "one profile per context"
        self.profile = profile
        return True

    def set_input_shape(self, name, shape):
        assert self.engine.io[name][0] == "INPUT", name
        if name == "input_ids":
            lo, hi = self.engine.trt.profiles[self.profile]
            assert all(lo[i] <= shape[i] <= hi[i] for i in range(2)), (self.profile, shape, lo, hi)
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, ptr):
        assert name in self.engine.io, name
        self.addresses[name] = ptr
        return True

    def is_stream_capturable(self, stream):
        return True

    def execute_async_v3(self, stream_handle):
        bound = dict(self.addresses)  # a captured graph keeps the addresses of capture time
        shapes = dict(self.shapes)
        self.engine.trt.cudart.submit(stream_handle, lambda: self._execute(bound, shapes))
        return True

    def _execute(self, addresses, shapes):
        eng = self.engine
        inputs = [n for n in eng.names if eng.io[n][0] == "INPUT"]
        assert set(shapes) == set(inputs), "every input needs a shape"
        assert set(addresses) == set(eng.names), f"unbound tensors {set(eng.names) - set(addresses)}"
        feed = {}
        for name in inputs:
            dtype, shape = eng.io[name][1], shapes[name]
            count = int(np.prod(shape))
            buf = (ctypes.c_byte * (count * dtype.itemsize)).from_address(addresses[name])
            feed[name] = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape).copy()
        eng.trt.executions.append((self.profile, shapes["input_ids"]))
        outputs = eng.session.run(None, feed)
        for item, value in zip(eng.session.get_outputs(), outputs):
            value = np.ascontiguousarray(value, dtype=eng.io[item.name][1])
            ctypes.memmove(addresses[item.name], value.ctypes.data, value.nbytes)
