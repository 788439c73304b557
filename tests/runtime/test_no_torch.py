"""The runtime must import and decode with torch unavailable (docs/conventions.md §3.6)."""
import subprocess
import sys
from pathlib import Path

import rrwkv_trt.bench as bench_pkg
import rrwkv_trt.cli as cli_pkg
import rrwkv_trt.core as core_pkg
import rrwkv_trt.runtime as runtime_pkg

TORCH_FREE = {pkg.__name__: Path(pkg.__file__).parent for pkg in (core_pkg, runtime_pkg, cli_pkg, bench_pkg)}
# The benchmark's coordinator is torch-free; these two run torch, in the subprocesses it starts.
NEEDS_TORCH = {"rrwkv_trt.bench.exports", "rrwkv_trt.bench.baselines"}

BLOCKER = """
import importlib.abc, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked: the runtime imported {name}")
        return None

sys.meta_path.insert(0, BlockTorch())
"""


def _runtime_modules() -> list[str]:
    """Every module of the torch-free packages: core, runtime, the CLI (which imports export and reference lazily)
    and the benchmark's coordinator."""
    names = []
    for package, folder in TORCH_FREE.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join((package, *parts)))
    return [name for name in names if name not in NEEDS_TORCH]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=120)


def test_blocker_blocks_torch():
    result = _run("import torch")
    assert result.returncode != 0 and "torch is blocked" in result.stderr


def test_import_every_runtime_module_without_torch():
    modules = _runtime_modules()
    assert {"rrwkv_trt.runtime.backends.ort", "rrwkv_trt.cli.main", "rrwkv_trt.runtime.decode",
            "rrwkv_trt.core.config"} <= set(modules)
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    # onnxruntime is imported lazily, inside the backend, not at module import
    code += "assert 'onnxruntime' not in sys.modules, 'a runtime module imports onnxruntime at import time'\n"
    # likewise onnx, TensorRT and cuda-python: imported lazily, inside functions
    code += ("lazy = [m for m in ('onnx', 'tensorrt', 'tensorrt_rtx', 'cuda') if m in sys.modules]\n"
             "assert not lazy, f'a runtime module imports {lazy} at import time'\n")
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_cli_run_without_torch(make_fake_model):
    out_dir = make_fake_model()
    code = ("from rrwkv_trt.cli.main import main\n"
            f"main(['run', {str(out_dir)!r}, '--prompt', 'a', '--max-new-tokens', '3'])\n")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "abcd\n"  # the prompt, then the continuation
