"""nvcc compile check of the TensorRT plugin sources for sm_80/87/90 against the TensorRT headers, warnings as
errors (plugins/compile_check.sh, `make plugins-check`). When `make test` has just run the check, its objects are
newer than every source and are only verified; otherwise the script runs here."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from plugin_ops import PLUGINS, REPO, files_of_op_folders, sources

OUT = REPO / "build" / "compile_check"
ARCHS = (80, 87, 90)


def expected_objects() -> list[Path]:
    """One object per op CUDA source and architecture, one per op plugin source and registration source."""
    host = sources("plugin") + [PLUGINS / "registerTrtStatic.cpp", PLUGINS / "registerTrtDynamic.cpp"]
    return ([OUT / f"{k.stem}_sm{sm}.o" for k in sources("cuda") for sm in ARCHS]
            + [OUT / f"{h.stem}.o" for h in host])


def _up_to_date(objects: list[Path]) -> bool:
    inputs = [p for pattern in ("*/*.cu", "*/*.cuh", "*/*.h", "*/*.cpp", "*.cpp", "compile_check.sh")
              for p in PLUGINS.glob(pattern)] + files_of_op_folders()
    newest = max(p.stat().st_mtime for p in inputs)
    return all(o.exists() and o.stat().st_mtime >= newest for o in objects)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH: cannot compile-check the plugins")
def test_plugins_compile_for_sm80_87_90():
    objects = expected_objects()
    assert any("Plugin" in o.name for o in objects), "no op folder declares PLUGIN_SOURCES"
    if not _up_to_date(objects):
        proc = subprocess.run(["bash", str(PLUGINS / "compile_check.sh")], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert proc.stdout.strip().splitlines()[-1].startswith("plugins-check: OK"), proc.stdout
    missing = [o.name for o in objects if not o.exists() or o.stat().st_size == 0]
    assert not missing, f"compile_check.sh left no object for {missing}"
