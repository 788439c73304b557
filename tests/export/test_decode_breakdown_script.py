"""scripts/decode_breakdown.py: the variants it rewrites stay runnable models, and it writes its JSON."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from helpers import REPO
from rrwkv_trt.export import onnx_export
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.quantize import quantize_export
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

# Loaded from its path: scripts/ on sys.path would shadow tests/long_context.py with scripts/long_context.py.
_spec = importlib.util.spec_from_file_location("decode_breakdown", REPO / "scripts" / "decode_breakdown.py")
decode_breakdown = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(decode_breakdown)

CFG = Rwkv4Config(vocab_size=40, n_embd=16, n_layer=2, dim_att=16, dim_ffn=64)


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.pth"
    torch.save(random_blinkdl_state_dict(CFG, seed=3), path)
    fp32 = onnx_export.export_checkpoint(load_checkpoint(path), tmp_path_factory.mktemp("fp32") / "onnx")
    return quantize_export(fp32, tmp_path_factory.mktemp("q") / "int8", "int8")


def test_seq1_rewrite_keeps_a_decode_step_exact(int8_export, tmp_path):
    variants = decode_breakdown.write_variants(int8_export, tmp_path)
    proto = onnx.load(variants["seq1"] / "model.onnx")
    assert not any(n.op_type == "Concat" for n in proto.graph.node)
    no_mm = onnx.load(variants["no-matmul"] / "model.onnx")
    assert not any(n.op_type in decode_breakdown.PROJECTIONS for n in no_mm.graph.node)
    with OrtSession(int8_export) as full, OrtSession(variants["seq1"]) as seq1:
        for s in (full, seq1):
            s.start_decode(s.initial_state(2))
        for token in (np.array([3, 7]), np.array([1, 0])):
            np.testing.assert_array_equal(full.step(token), seq1.step(token))


def test_script_writes_its_json(int8_export, tmp_path):
    if find_custom_ops_library() is None:
        pytest.skip("build/librrwkv_ort_ops.so not built (`make plugins`)")
    out = tmp_path / "breakdown.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "decode_breakdown.py"), str(int8_export),
                           "--reps", "1", "--steps", "2", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"full", "seq1", "no-matmul", "seq1 no-matmul"}
    assert all(r["median_ms"] > 0 for r in results.values())
