"""A fake exported model for runtime and bench tests, built with onnx.helper (no torch).

tests/runtime/conftest.py and tests/bench/conftest.py import its fixtures.

The fake predicts a fixed next token per input token (logits = table[input_ids]) and counts tokens in
its state: every float slot and `pos` gain T per call (att_pp stays at -1e30), so a test can tell
whether state flowed through prefill, ping-pong decode and save/load.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.metadata import ModelInfo, to_metadata
from rrwkv_trt.runtime.tokenizer import byte_level_tokenizer

_ONNX_TYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int64": TensorProto.INT64}


def build_fake_model(out_dir: Path, family: str = "rwkv4", vocab_size: int = 256, n_layer: int = 1,
                     next_token: dict[int, int] | None = None, tokenizer: bool = True,
                     drop_inputs: int = 0, fingerprint: bool = True) -> Path:
    """Write OUT_DIR/{model.onnx, config.json, tokenizer.json}.

    Args:
        next_token: overrides of the default successor (i + 1) % V.
        drop_inputs: leave the last N state inputs out of the graph (to test I/O checks).
        fingerprint: record rrwkv.fingerprint, a digest of the config and the table (so fakes that predict
            differently have different fingerprints); False: none, as in exports made before 2026-12-06.
    """
    cls = RrwkvConfig if family == "rrwkv" else Rwkv4Config
    config = cls(vocab_size=vocab_size, n_embd=4, n_layer=n_layer, dim_att=4, dim_ffn=16)
    spec = config.state_spec()
    succ = {i: (i + 1) % vocab_size for i in range(vocab_size)} | (next_token or {})
    table = np.zeros((vocab_size, vocab_size), np.float32)
    for i, j in succ.items():
        table[i, j] = 10.0
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["logits"], axis=0),
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "one"], ["seq_len"], axis=0),
        helper.make_node("Cast", ["seq_len"], ["seq_len_f"], to=TensorProto.FLOAT),
    ]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab_size])]
    tensors = spec.tensors()[: len(spec.tensors()) - drop_inputs]
    for t in tensors:
        dims = ["batch" if d == "batch" else int(d) for d in t.slot.shape]
        ty = _ONNX_TYPES[t.slot.dtype]
        inputs.append(helper.make_tensor_value_info(t.input_name, ty, dims))
        outputs.append(helper.make_tensor_value_info(t.output_name, ty, dims))
        nodes.append(helper.make_node("Add", [t.input_name, "seq_len" if ty == TensorProto.INT64 else "seq_len_f"],
                                      [t.output_name]))
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array(1, np.int64), "one")]
    graph = helper.make_graph(nodes, "fake_rwkv", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    digest = hashlib.sha256(json.dumps(config.to_dict()).encode() + table.tobytes()).hexdigest()
    info = ModelInfo(config=config, state=spec, precision="fp32", fingerprint=digest if fingerprint else None)
    helper.set_model_props(model, to_metadata(info))
    onnx.checker.check_model(model, full_check=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out_dir / "model.onnx")
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if tokenizer:
        byte_level_tokenizer().save(str(out_dir / "tokenizer.json"))
    return out_dir


@pytest.fixture
def make_fake_model(tmp_path):
    """Factory: make_fake_model(name="m", **build_fake_model kwargs) -> the model folder."""
    def make(name: str = "m", **kwargs) -> Path:
        return build_fake_model(tmp_path / name, **kwargs)
    return make


@pytest.fixture(params=["rwkv4", "rrwkv"])
def fake_model(request, make_fake_model) -> Path:
    """One fake model per family (RRWKV adds the medium slots and state_in.pos)."""
    return make_fake_model(request.param, family=request.param, n_layer=2)
