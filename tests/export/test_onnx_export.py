"""Exported ONNX: one rrwkv node per layer, full checker, metadata, ORT (function bodies) == PyTorch."""
import numpy as np
import onnx
import pytest
import torch
from helpers import assert_close
from safetensors.torch import save_file

from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.runtime.decode import Generator
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import from_metadata

SIZES = dict(vocab_size=97, n_embd=32, n_layer=3, dim_att=24, dim_ffn=96)
CONFIGS = {"rwkv4": Rwkv4Config(**SIZES), "rrwkv": RrwkvConfig(**SIZES, medium_interval=8)}
OP_TYPE = {"rwkv4": "WKV4", "rrwkv": "WKV4Medium"}
ISSUE_ATOL = 1e-4  # issue 2: ONNX Runtime vs PyTorch logits, max abs error, 100-token prompt


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, tmp_path_factory):
    name = request.param
    src = tmp_path_factory.mktemp(f"{name}_ckpt")
    save_file(random_blinkdl_state_dict(CONFIGS[name], seed=7), str(src / "model.safetensors"))
    ckpt = load_checkpoint(src, family=name)
    out = export_checkpoint(ckpt, tmp_path_factory.mktemp(f"{name}_out") / "onnx")
    return name, ckpt, out


def torch_state(model, ort_state):
    return {k.removeprefix("state_in."): torch.from_numpy(np.array(v)) for k, v in ort_state.items()}


def test_graph_contract(exported):
    name, ckpt, out = exported
    model = onnx.load(out / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    custom = [n for n in model.graph.node if n.domain == "rrwkv"]
    assert len(custom) == ckpt.config.n_layer and {n.op_type for n in custom} == {OP_TYPE[name]}
    for node in custom:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["plugin_namespace"] == b"rrwkv" and attrs["plugin_version"] == b"1"
    assert {(f.domain, f.name) for f in model.functions} == {("rrwkv", OP_TYPE[name])}
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 18), ("rrwkv", 1)}
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.config == ckpt.config and info.precision == "fp32"
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert [d.dim_param for d in inputs["input_ids"].shape.dim] == ["batch", "seq"]
    assert list(inputs) == ["input_ids", *info.state.input_names(), "logits_from"]
    assert [o.name for o in model.graph.output] == ["logits", *info.state.output_names()]


def test_logits_from_selects_positions(exported):
    """logits_from = k computes the logits of positions k .. T-1 only; the state does not depend on it."""
    _, ckpt, out = exported
    model = onnx.load(out / "model.onnx")
    lf = {i.name: i.type.tensor_type for i in model.graph.input}["logits_from"]
    assert lf.elem_type == onnx.TensorProto.INT64 and [d.dim_value for d in lf.shape.dim] == [1]
    logits = {o.name: o.type.tensor_type for o in model.graph.output}["logits"]
    assert [d.dim_param for d in logits.shape.dim[:2]] == ["batch", "logits_seq"]
    V = ckpt.config.vocab_size
    ids = np.random.default_rng(3).integers(0, V, (2, 11))
    with OrtSession(out) as session:
        full, state = session.run(ids)
        last, last_state = session.run(ids, last_only=True)
        assert full.shape == (2, 11, V) and last.shape == (2, 1, V)
        assert_close("last-only logits", full[:, -1:], last, atol=1e-6, rtol=1e-6)
        for name in state:
            np.testing.assert_array_equal(state[name], last_state[name], err_msg=name)
        raw = session._sess  # the graph input itself: positions 4..10
        feed = {"input_ids": ids, "logits_from": np.array([4]), **session.initial_state(2)}
        tail = raw.run(["logits"], feed)[0]
        assert tail.shape == (2, 7, V)
        assert_close("logits_from=4", full[:, 4:], tail, atol=1e-6, rtol=1e-6)


@torch.no_grad()
def test_prefill_and_steps_match_pytorch(exported):
    name, ckpt, out = exported
    model = build_model(ckpt.config, ckpt.state_dict)
    ids = np.random.default_rng(0).integers(0, SIZES["vocab_size"], (2, 100))
    with OrtSession(out) as sess:
        state = sess.initial_state(2)
        if "state_in.pos" in state:
            state["state_in.pos"][:] = [0, 5]  # sequences at different positions
        logits, new = sess.run(ids, state)
        ref_logits, ref_state = model(torch.from_numpy(ids), torch_state(model, state))
        assert_close("prefill logits", ref_logits, logits, ISSUE_ATOL, 0)
        for key, value in ref_state.items():
            assert_close(f"state {key}", value, new["state_in." + key], 1e-4, 1e-4)
        sess.start_decode(state)
        ref = torch_state(model, state)
        for t in range(ids.shape[1]):
            step_logits = sess.step(ids[:, t])
            ref_step, ref = model.step(torch.from_numpy(ids[:, t]), ref)
            assert_close(f"step {t} logits", ref_step, step_logits[:, 0] if step_logits.ndim == 3 else step_logits,
                         ISSUE_ATOL, 0)


@torch.no_grad()
def test_greedy_decode_same_ids(exported):
    name, ckpt, out = exported
    model = build_model(ckpt.config, ckpt.state_dict)
    prompt = [3, 14, 15, 92, 65, 35]
    logits, state = model(torch.tensor([prompt]), model.init_state(1))
    ids = [int(logits[0, -1].argmax())]
    for _ in range(63):
        step, state = model.step(torch.tensor([ids[-1]]), state)
        ids.append(int(step[0].argmax()))
    with OrtSession(out) as sess:
        assert Generator(sess).greedy_ids(prompt, 64) == ids


def test_bad_token_ids_and_state(exported):
    _, _, out = exported
    with OrtSession(out) as sess:
        with pytest.raises(UserError, match="vocab"):
            sess.run(np.array([[1, SIZES["vocab_size"]]]), None)
        state = sess.initial_state(1)
        state["state_in.1.att_aa"] = np.zeros((1, 5), np.float32)
        with pytest.raises(UserError, match=r"state_in\.1\.att_aa has shape \[1, 5\], spec expects \[1, 24\]"):
            sess.run(np.array([[1, 2]]), state)
