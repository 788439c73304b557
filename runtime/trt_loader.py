"""TensorRT made ready for rrwkv: import the module, one logger per module, the plugin library loaded once.

`tensorrt` / `tensorrt_rtx` are imported lazily (GPU hosts, `pip install 'rrwkv-trt[trt]'`). Every function takes
the TensorRT module as an argument, so the same code serves TensorRT and TensorRT-RTX (docs/toolchain.md §10).
"""
from __future__ import annotations

import logging
import os
import re
import struct
from pathlib import Path

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.paths import BUILD_DIR
from rrwkv_trt.core.ops import OP_NAMES, PLUGIN_NAMESPACE, PLUGIN_VERSION

PLUGIN_LIBRARY = "librrwkv_trt_plugins_dyn.so"

_log = logging.getLogger(__name__)
_loggers: dict[str, object] = {}  # TensorRT module name -> its process-wide logger
_loaded_library: dict[str, Path] = {}  # TensorRT module name -> the plugin library loaded into its registry


def import_tensorrt():
    """The full TensorRT Python module (`tensorrt`), or a UserError saying how to get it."""
    try:
        import tensorrt
    except ImportError as err:
        raise UserError(f"TensorRT is not installed ({err}); on a host with an NVIDIA GPU run "
                        "pip install 'rrwkv-trt[trt]' (NVIDIA's wheels; docs/toolchain.md §11)") from None
    return tensorrt


def import_tensorrt_rtx():
    """TensorRT-RTX (`tensorrt_rtx`), a CPU-capable ahead-of-time builder: it checks the plugins on machines without
    a GPU (docs/toolchain.md §10); its engines run only on TensorRT-RTX."""
    try:
        import tensorrt_rtx
        import tensorrt_rtx_libs
    except ImportError as err:
        raise UserError(f"TensorRT-RTX is not installed ({err}); pip install tensorrt-rtx-cu13==1.7.1.116") from None
    libdir = Path(tensorrt_rtx_libs.__file__).parent
    if not (libdir / "libtensorrt_rtx.so").exists():
        # Without it the process aborts inside the ONNX parser at the first plugin node (docs/toolchain.md §10).
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
    """The errors `trt_logger(trt)` recorded since the last call, joined for a UserError message."""
    logger = trt_logger(trt)
    # TensorRT-RTX on a machine without a GPU appends a CUDA-driver error to every error; it says nothing here.
    errors = [e for e in logger.errors if "CUDA driver version is insufficient" not in e]
    logger.errors = []
    return "; ".join(errors[-3:]) if errors else "see TensorRT's log"


def plugin_search_path() -> list[Path]:
    """Where `find_plugin_library` looks, in order: the build/ folder of the source checkout this package is
    imported from (where `make plugins` writes it). No environment variables are consulted."""
    return [BUILD_DIR / PLUGIN_LIBRARY]


def find_plugin_library(library: str | os.PathLike | None = None) -> Path:
    """`library` if given (it must exist), else the first existing file of `plugin_search_path()`."""
    if library is not None:
        path = Path(library)
        if not is_file(path):
            raise UserError(f"plugin library {path} not found; run `make plugins` or pass the path of "
                            f"{PLUGIN_LIBRARY}")
        return path.resolve()
    found = next((p for p in plugin_search_path() if p.is_file()), None)
    if found is None:
        raise UserError(f"plugin library {PLUGIN_LIBRARY} not found in {[str(p) for p in plugin_search_path()]}; "
                        "run `make plugins` (or pass --plugin-library PATH)")
    return found.resolve()


ELF64_HEADER_BYTES = 64
MAX_LIBRARY_BYTES = 2 << 30  # read whole into memory: far more than any plugin library, far less than RAM
ET_DYN = (3).to_bytes(2, "little")  # e_type of a shared object
SHT_DYNAMIC, DT_NULL, DT_NEEDED = 6, 0, 1
_SECTION = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr: name, type, flags, addr, offset, size, link, info, align, entsize
_DYN = struct.Struct("<qQ")  # Elf64_Dyn: tag, value


class _ElfError(Exception):
    """A part of an ELF file lies outside the file or contradicts the format; the message says which."""


def is_file(path: Path) -> bool:
    """Path.is_file, but False (not OSError) for a name the file system refuses, e.g. one that is too long."""
    try:
        return path.is_file()
    except OSError:
        return False


def elf_needed(path: str | os.PathLike) -> list[str] | None:
    """DT_NEEDED entries of a 64-bit little-endian ELF shared library; None if the file is not one.

    The file is hostile until parsed: every header, table and string is bounds-checked against the file's size
    before it is read. Raises UserError for a truncated or malformed ELF file, naming the part that is wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_LIBRARY_BYTES:
                raise UserError(f"{path} has {size} bytes, more than any plugin library ({MAX_LIBRARY_BYTES}); "
                                "pass the librrwkv_trt_plugins_dyn.so that `make plugins` builds")
            data = f.read(MAX_LIBRARY_BYTES)
    except OSError as err:
        raise UserError(f"cannot read plugin library {path}: {err.strerror or err}") from None
    if len(data) < ELF64_HEADER_BYTES or data[:6] != b"\x7fELF\x02\x01" or data[0x10:0x12] != ET_DYN:
        return None
    try:
        return _dynamic_needed(data)
    except _ElfError as err:
        raise UserError(f"{path} is a truncated or malformed ELF file ({err}); rebuild it with `make plugins`") from None


def _unpack(fmt: str, data, offset: int, what: str) -> tuple:
    if offset < 0 or offset + struct.calcsize(fmt) > len(data):
        raise _ElfError(f"{what} at byte {offset} lies outside the file's {len(data)} bytes")
    return struct.unpack_from(fmt, data, offset)


def _sections(data) -> list[tuple]:
    shoff, = _unpack("<Q", data, 0x28, "e_shoff")
    shentsize, shnum = _unpack("<HH", data, 0x3A, "e_shentsize")
    if shoff == 0:
        return []  # no section header table
    if shentsize < _SECTION.size:
        raise _ElfError(f"e_shentsize {shentsize} is smaller than a section header ({_SECTION.size} bytes)")
    if shnum == 0:  # more than 0xff00 sections: the count is section 0's sh_size (ELF extended numbering)
        shnum = _unpack(_SECTION.format, data, shoff, "section header 0")[5]
    if shoff + shnum * shentsize > len(data):
        raise _ElfError(f"{shnum} section headers at byte {shoff} overrun the file's {len(data)} bytes")
    return [_SECTION.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]


def _dynamic_needed(data) -> list[str]:
    sections = _sections(data)
    dynamic = [s for s in sections if s[1] == SHT_DYNAMIC]
    if len(dynamic) > 1:  # a library has one; many, each spanning the file, would take quadratic time
        raise _ElfError(f"{len(dynamic)} dynamic sections, expected one")
    needed = []
    for _, _, _, _, offset, size, link, _, _, entsize in dynamic:
        if link >= len(sections):
            raise _ElfError(f"the dynamic section links string table {link} of {len(sections)} sections")
        strtab_offset, strtab_size = sections[link][4], sections[link][5]
        if strtab_offset + strtab_size > len(data) or offset + size > len(data):
            raise _ElfError("the dynamic section or its string table lies outside the file")
        if entsize not in (0, _DYN.size):
            raise _ElfError(f"dynamic entries of {entsize} bytes, expected {_DYN.size}")
        for pos in range(offset, offset + size - _DYN.size + 1, _DYN.size):
            tag, value = _DYN.unpack_from(data, pos)
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                needed.append(_string(data, strtab_offset, strtab_size, value))
    return needed


def _string(data, table: int, table_size: int, index: int) -> str:
    """The NUL-terminated string at `index` of the string table at `table`, which must hold all of it."""
    end = data.find(b"\0", table + index, table + table_size) if index < table_size else -1
    if end < 0:
        raise _ElfError(f"DT_NEEDED string {index} does not end inside its {table_size}-byte string table")
    try:
        return data[table + index:end].decode()
    except UnicodeDecodeError:
        raise _ElfError(f"DT_NEEDED string {index} is not UTF-8") from None


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

    A process loads one rrwkv plugin library, once (docs/conventions.md §4.4): asking again for the same file is a
    no-op, asking for another one is an error. After loading, every rrwkv creator must resolve as (op, "1", "rrwkv").

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
    missing = [op for op in OP_NAMES if not _has_creator(registry, op)]
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
    missing = [op for op in OP_NAMES if not _has_creator(registry, op)]
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

