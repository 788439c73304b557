"""The few CUDA runtime calls TrtSession makes, through cuda-python (imported lazily, GPU hosts)."""
from __future__ import annotations

import ctypes

import numpy as np

from rrwkv_trt.core.errors import UserError


def import_cudart():
    """The CUDA runtime bindings of cuda-python: `cuda.bindings.runtime` (12.6+) or `cuda.cudart` (older)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as err:
            raise UserError(f"TrtSession needs cuda-python ({err}); on a GPU host run pip install "
                            "'rrwkv-trt[trt]'") from None
    return cudart


class CudaRuntime:
    """The few CUDA runtime calls TrtSession makes, each checked; pointers are plain ints."""

    def __init__(self, cudart) -> None:
        self.rt = cudart

    def check(self, result, what: str):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, name = self.rt.cudaGetErrorString(err)
            name = name.decode() if isinstance(name, bytes) else str(name)
            raise RuntimeError(f"CUDA error in {what}: {name} ({int(err)})")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self.check(self.rt.cudaFree(ptr), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))

    def free_host(self, ptr: int) -> None:
        self.check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def copy(self, dst: int, src: int, nbytes: int, kind: str, stream) -> None:
        """kind: "htod", "dtoh" or "dtod"; asynchronous on `stream`."""
        kinds = {"htod": "cudaMemcpyHostToDevice", "dtoh": "cudaMemcpyDeviceToHost",
                 "dtod": "cudaMemcpyDeviceToDevice"}
        kind_value = getattr(self.rt.cudaMemcpyKind, kinds[kind])
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind_value, stream), f"cudaMemcpyAsync {kind}")

    def stream_create(self):
        return self.check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_destroy(self, stream) -> None:
        self.check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def sync(self, stream) -> None:
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def capture(self, stream, enqueue) -> object:
        """Capture what `enqueue()` puts on `stream` into an instantiated CUDA graph."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = self.check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        try:
            return self.check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            self.check(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def launch(self, graph_exec, stream) -> None:
        self.check(self.rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph_exec) -> None:
        self.check(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")


def pinned_array(ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A numpy view of pinned host memory at `ptr`."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_byte * max(nbytes, 1)).from_address(ptr), dtype=dtype,
                         count=int(np.prod(shape))).reshape(shape)
