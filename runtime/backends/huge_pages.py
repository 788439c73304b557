"""The rrwkv custom ops' weights in transparent huge pages, handed to ONNX Runtime in place of its file mapping.

ONNX Runtime maps an export's external data (model.onnx.data) into memory with 4 KiB pages. ORT's own kernels copy
their weights into packed buffers at load, but the rrwkv kernels (librrwkv_ort_ops.so) read theirs in place on
every call: MatMulW8 streams all 135 MB of int8 weights of the 169M RWKV-4 per token (MatMulWF16 its 261 MB of fp16
weights), a TLB miss every 4 KiB, each a two-level page walk on a virtual machine. `load_custom_op_weights` reads
exactly those initializers (external, consumed by rrwkv nodes only) into one private anonymous buffer advised
MADV_HUGEPAGE (2 MiB pages where the kernel's THP setting is `madvise` or `always`); OrtSession passes them with
SessionOptions.add_initializer, which makes ORT use that memory instead of mapping the file. Fewer TLB misses make
an int8 decode step of the 169M faster, with bit-identical results (measured: README "Speed on the edge CPU", Huge
pages). Peak RSS is unchanged: the same bytes, held once, though private to the process rather than shared through
the page cache.

The export lists those initializers in `model.onnx` + KERNEL_WEIGHTS_SUFFIX (export/kernel_weights.py), so the
runtime needs no onnx package to find them (importing onnx is slow and costs memory; measured: README "Speed on
the edge CPU", Huge pages). The index is hostile until checked: read_index bounds it by the data file, and
`check_against_graph` requires every entry to be what the graph itself says (onnx_reader.read_graph, no onnx): an
external initializer in that data file at the same bytes, of the same dtype and shape, read by rrwkv nodes only;
add_initializer would otherwise replace any initializer of the graph with any bytes of any file. Exports without that index (older ones, or small ones that keep their weights inside
model.onnx), and platforms without private anonymous mappings, keep ORT's file mapping.
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.errors import UserError
from ...core.kernel_weights import KERNEL_WEIGHTS_SUFFIX, ExternalTensor, read_index
from ...core.ops import DOMAIN
from ..onnx_reader import TENSOR_DTYPES, Graph, read_graph

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


def load_custom_op_weights(model_path: Path, graph: Graph | None = None) -> HugePageWeights | None:
    """Read `read_index(model_path)` into one huge-page buffer; None below MIN_BYTES (fp32 exports list only
    WKV's few-KiB parameters). `graph`: model_path's read_graph, read here when not given."""
    tensors = read_index(model_path)
    if not tensors:
        return None
    check_against_graph(model_path, tensors, read_graph(model_path) if graph is None else graph)
    starts = np.cumsum([0] + [-(-t.length // ALIGN) * ALIGN for t in tensors])
    if starts[-1] < MIN_BYTES:
        return None
    buffer = mmap.mmap(-1, int(starts[-1]) + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux; the kernel may still decline (THP `never`, no free huge page)
        buffer.madvise(mmap.MADV_HUGEPAGE)  # before the pages are touched, so faults allocate 2 MiB pages
    raw = np.frombuffer(buffer, dtype=np.uint8)
    raw = raw[(-raw.ctypes.data) % HUGE_PAGE:]  # the first tensor on a 2 MiB boundary
    arrays = {}
    with open(tensors[0].file, "rb") as f:  # the index names one data file
        for t, start in zip(tensors, starts):
            f.seek(t.offset)
            dest = raw[start:start + t.length]
            if f.readinto(memoryview(dest)) != t.length:  # the file shrank since read_index measured it
                raise UserError(f"{t.file} changed while it was read; load the model again")
            arrays[t.name] = dest.view(t.dtype).reshape(t.dims)
    return HugePageWeights(arrays, int(starts[-1]))


def check_against_graph(model_path: Path, tensors: list[ExternalTensor], graph: Graph) -> None:
    """Refuse an index entry that is not an initializer of `graph` stored at the same place of the same data file,
    with the same dtype and shape, and read by rrwkv nodes only (what export/kernel_weights.py lists)."""
    domains = graph.reader_domains()
    for t in tensors:
        where = f"{model_path}{KERNEL_WEIGHTS_SUFFIX}: {t.name!r}"
        init = graph.initializers.get(t.name)
        if init is None or init.external is None:
            raise UserError(f"{where} is not an external initializer of {model_path.name}; the index belongs to "
                            "another export, re-export the model")
        stored = (init.external.get("location"), init.external.get("offset", "0"), init.external.get("length"))
        if stored != (t.file.name, str(t.offset), str(t.length)):
            raise UserError(f"{where}: the graph stores it at (file, offset, length) {stored}, the index says "
                            f"{(t.file.name, t.offset, t.length)}; re-export the model")
        if (TENSOR_DTYPES.get(init.data_type), tuple(init.dims)) != (t.dtype.name, t.dims):
            raise UserError(f"{where}: the graph has it as {TENSOR_DTYPES.get(init.data_type, init.data_type)} "
                            f"{list(init.dims)}, the index as {t.dtype.name} {list(t.dims)}; re-export the model")
        readers = domains.get(t.name, set())
        if readers != {DOMAIN}:
            raise UserError(f"{where} is read by nodes of domains {sorted(readers)}, not by rrwkv nodes only: it "
                            "must stay ORT's; re-export the model")
