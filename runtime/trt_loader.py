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
        if not path.is_file():
            raise UserError(f"plugin library {path} not found; run `make plugins` or pass the path of "
                            f"{PLUGIN_LIBRARY}")
        return path.resolve()
    found = next((p for p in plugin_search_path() if p.is_file()), None)
    if found is None:
        raise UserError(f"plugin library {PLUGIN_LIBRARY} not found in {[str(p) for p in plugin_search_path()]}; "
                        "run `make plugins` (or pass --plugin-library PATH)")
    return found.resolve()


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

