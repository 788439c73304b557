"""`make demo` builds the fused CPU kernels first (scripts/demo_kernels.sh) and falls back to the function bodies only
where the build is impossible, saying why; the export is not redone while it is newer than the checkpoint."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from kernel_shim import REPO

SCRIPT = REPO / "scripts" / "demo_kernels.sh"


def _run(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_no_compiler_or_no_cmake_falls_back_with_the_reason(tmp_path):
    done = _run(os.environ | {"CXX": str(tmp_path / "no-such-c++")})
    assert done.returncode == 0
    assert done.stderr.strip() == ("make demo: no C++ compiler found (c++, g++, clang++ or $CXX), so "
                                   "librrwkv_ort_ops.so cannot be built; running the function bodies (slower)")
    bin_dir = tmp_path / "bin"  # a PATH with a compiler but no cmake
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "c++"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    done = _run({"PATH": str(bin_dir), "CXX": "c++"})
    assert done.returncode == 0 and "make demo: cmake not found" in done.stderr


def test_the_build_only_builds_the_ort_library():
    """With a compiler and CMake the script builds the rrwkv_ort_ops target (nothing to do when `make plugins` ran)."""
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("needs c++ and cmake (without them the fallback test covers the script)")
    done = _run(dict(os.environ))
    assert done.returncode == 0 and "running the function bodies" not in done.stderr, done.stderr
    assert "Built target rrwkv_ort_ops" in done.stdout and "rrwkv_trt_plugins" not in done.stdout
    assert (REPO / "build" / "librrwkv_ort_ops.so").is_file()


def test_demo_target_keeps_a_fresh_export():
    # --no-print-directory: under `make test` this make is a sub-make, which would print "Entering directory" lines
    done = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed",
                           "-o", "build/demo/model.onnx", "demo"], cwd=REPO,
                          capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0] == "bash scripts/demo_kernels.sh", done.stdout + done.stderr
    assert not any("rm -rf" in line or "rrwkv-trt export" in line for line in lines)
