"""The op folders as the build reads them, and the Python op registry they must match.

- `registry()`: core/ops.py (OPS, DOMAIN, PLUGIN_NAMESPACE, ...) loaded by file path, so that the tests need no
  installed package.
- `op_folders()`: every plugins/<folder>/op.cmake through plugins/rrwkvOps.cmake in CMake's script mode (the reader
  the build uses), as {op name: OpFolder}; it also writes the generated registration headers to OPS_OUT.
- `sources(role)`: one role's sources of every op (paths from the repository root), e.g. "cuda", "plugin".
"""
from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from rrwkv_trt.core.paths import REPO_ROOT

REPO = REPO_ROOT
PLUGINS = REPO / "plugins"
OPS_MODULE = REPO / "core" / "ops.py"
OPS_OUT = REPO / "build" / "op_folders"  # rrwkvOps.txt and the generated headers, for the scripts' builds
ROLES = ("cpu", "ort", "cuda", "plugin", "plugin_header", "test_shim", "parity")


@functools.cache
def registry() -> ModuleType:
    """core/ops.py as a module; registered in sys.modules first, because dataclasses look their module up there."""
    name = "rrwkv_core_ops_by_path"
    spec = importlib.util.spec_from_file_location(name, OPS_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class OpFolder:
    """One op.cmake: its op name, folder, C++ stem, and sources by role (paths from the repository root)."""
    name: str
    folder: str
    cxx: str
    sources: dict[str, tuple[Path, ...]] = field(default_factory=dict)


def files_of_op_folders() -> list[Path]:
    """Every file that op_folders() depends on: the reader and the fragments."""
    return [PLUGINS / "rrwkvOps.cmake", *sorted(PLUGINS.glob("*/op.cmake"))]


@functools.cache
def op_folders() -> dict[str, OpFolder]:
    """{op name: OpFolder} in the build's order (folder name order), read by plugins/rrwkvOps.cmake."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("cmake not on PATH: cannot read plugins/*/op.cmake (plugins/rrwkvOps.cmake)")
    proc = subprocess.run([cmake, f"-DRRWKV_OPS_OUT={OPS_OUT}", "-P", str(PLUGINS / "rrwkvOps.cmake")], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"plugins/rrwkvOps.cmake failed:\n{proc.stdout}{proc.stderr}")
    heads: dict[str, tuple[str, str]] = {}
    sources: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for line in (OPS_OUT / "rrwkvOps.txt").read_text().splitlines():
        role, name, *rest = line.split()
        if role == "op":
            heads[name] = (rest[0], rest[1])
        else:
            sources[name][role].append(REPO / rest[0])
    return {name: OpFolder(name, folder, cxx, {role: tuple(sources[name][role]) for role in ROLES})
            for name, (folder, cxx) in heads.items()}


def sources(role: str) -> list[Path]:
    """The `role` sources of every op, in the build's order."""
    assert role in ROLES, role
    return [path for op in op_folders().values() for path in op.sources[role]]
