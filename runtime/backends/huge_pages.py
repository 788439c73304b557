"""The rrwkv custom ops' weights in transparent huge pages, handed to ONNX Runtime in place of its file mapping.

ONNX Runtime maps an export's external data (model.onnx.data) into memory with 4 KiB pages. ORT's own kernels copy
their weights into packed buffers at load, but the rrwkv kernels (librrwkv_ort_ops.so) read theirs in place on
every call: MatMulW8 streams all 135 MB of int8 weights of the 169M RWKV-4 per token, a TLB miss every 4 KiB,
each a two-level page walk on a virtual machine. `load_custom_op_weights` reads exactly those initializers (external,
consumed by rrwkv nodes only) into one private anonymous buffer advised MADV_HUGEPAGE (2 MiB pages where the
kernel's THP setting is `madvise` or `always`); OrtSession passes them with SessionOptions.add_initializer,
which makes ORT use that memory instead of mapping the file. Fewer TLB misses make an int8 decode step of the 169M
faster, with bit-identical results (measured: README "Speed on the edge CPU", Huge pages). Peak RSS is unchanged:
the same bytes, held once, though private to the process rather than shared through the page cache.

The export lists those initializers in `model.onnx` + KERNEL_WEIGHTS_SUFFIX (export/kernel_weights.py), so the
runtime needs no onnx package to find them (importing onnx is slow and costs memory; measured: README "Speed on
the edge CPU", Huge pages). Exports without that index (older ones, or small ones that keep their weights inside
model.onnx), and platforms without private anonymous mappings, keep ORT's file mapping.
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.kernel_weights import checked_length, read_index

HUGE_PAGE = 2 << 20
MIN_BYTES = HUGE_PAGE  # less than one huge page of kernel weights stays mapped by ORT
ALIGN = 64  # each tensor starts on a cache line (the kernels' 512-bit loads)


@dataclass
class HugePageWeights:
    """Initializer name -> array viewing one shared anonymous buffer (kept alive by the arrays)."""

    arrays: dict[str, np.ndarray]
    nbytes: int


def huge_pages_available() -> bool:
    """Whether this platform has private anonymous mappings (POSIX); MADV_HUGEPAGE is applied where it exists."""
    return hasattr(mmap, "MAP_PRIVATE") and hasattr(mmap, "MAP_ANONYMOUS")


def load_custom_op_weights(model_path: Path) -> HugePageWeights | None:
    """Read `read_index(model_path)` into one huge-page buffer; None below MIN_BYTES (fp32 exports list only
    WKV's few-KiB parameters)."""
    tensors = read_index(model_path)
    lengths = [checked_length(model_path, t) for t in tensors]
    starts = np.cumsum([0] + [-(-n // ALIGN) * ALIGN for n in lengths])
    if not tensors or starts[-1] < MIN_BYTES:
        return None
    buffer = mmap.mmap(-1, int(starts[-1]) + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux; the kernel may still decline (THP `never`, no free huge page)
        buffer.madvise(mmap.MADV_HUGEPAGE)  # before the pages are touched, so faults allocate 2 MiB pages
    raw = np.frombuffer(buffer, dtype=np.uint8)
    raw = raw[(-raw.ctypes.data) % HUGE_PAGE:]  # the first tensor on a 2 MiB boundary
    arrays = {}
    with open(tensors[0].file, "rb") as f:  # the index names one data file
        for t, n, start in zip(tensors, lengths, starts):
            f.seek(t.offset)
            dest = raw[start:start + n]
            f.readinto(memoryview(dest))  # read_index checked that the file holds [offset, offset + n)
            arrays[t.name] = dest.view(t.dtype).reshape(t.dims)
    return HugePageWeights(arrays, int(starts[-1]))
