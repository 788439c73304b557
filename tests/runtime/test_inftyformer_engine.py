"""A whole ∞-former export through `rrwkv-trt build` under TensorRT-RTX on the CPU (docs/toolchain.md §10): the
ring-buffer index arithmetic parses, the six plugin layers bind (LTMUpdate and two ContinuousGaussianAttention per
layer), and the prefill profile is capped at the model's max_call_tokens (docs/families/inftyformer.md §4.11.4)."""
from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
import trt_rtx_support as rtx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))


@pytest.fixture(scope="module")
def trt():
    reason = rtx.skip_reason()
    if reason:
        pytest.skip(reason)
    import tensorrt_rtx

    rtx.load_plugins(tensorrt_rtx)  # the process's one plugin load, shared with the other TensorRT-RTX tests
    return tensorrt_rtx


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("torch", reason="exporting the model needs torch ([export] extra)")
    from inftyformer_fixtures import write_checkpoint

    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.onnx_export import export_checkpoint

    ckpt = write_checkpoint(tmp_path_factory.mktemp("inftyformer_ckpt") / "ckpt", seed=3, sticky=1)
    return export_checkpoint(load_checkpoint(ckpt), tmp_path_factory.mktemp("inftyformer_exp") / "onnx")


def test_build_caps_the_prefill_profile_at_the_call_limit(trt, exported, tmp_path):
    from rrwkv_trt.runtime.engine import build_engine

    lines = []
    sidecar = build_engine(exported, tmp_path / "m.plan", max_batch=3, max_seq=16, plugin_library=rtx.LIBRARY,
                           compute_capability="8.6", progress=lines.append, trt=trt)
    L = sidecar.info.config.segment_len
    assert sidecar.max_seq == L < 16
    assert f"prefill seq capped at {L}" in "\n".join(lines)
    op_type = {n.name: n.op_type for n in onnx.load(str(exported / "model.onnx")).graph.node}
    assert sorted(op_type[name] for name in sidecar.plugin_layers) == ["ContinuousGaussianAttention"] * 4 + [
        "LTMUpdate"] * 2
