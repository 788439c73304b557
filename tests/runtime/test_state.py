import dataclasses

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import PP_INIT, Rwkv4Config
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import ModelInfo
from rrwkv_trt.runtime.state import allocate_state, validate_state
from rrwkv_trt.runtime.state_file import load_state_file, save_state_file

RWKV4 = Rwkv4Config(vocab_size=50, n_embd=8, n_layer=4, dim_att=64, dim_ffn=32).state_spec()
RRWKV_CFG = RrwkvConfig(vocab_size=50, n_embd=8, n_layer=2, dim_att=8, dim_ffn=32)
RRWKV = RRWKV_CFG.state_spec()
RRWKV_INFO = ModelInfo(RRWKV_CFG, RRWKV, "fp32", fingerprint="0f" * 32)


def test_allocate_shapes_dtypes_and_init():
    state = allocate_state(RWKV4, batch=3)
    assert list(state) == RWKV4.input_names()
    assert state["state_in.3.att_xx"].shape == (3, 8)
    assert state["state_in.3.att_aa"].shape == (3, 64)
    assert all(v.dtype == np.float32 for v in state.values())
    assert (state["state_in.0.att_pp"] == np.float32(PP_INIT)).all()
    assert not state["state_in.2.att_aa"].any()


def test_allocate_rrwkv_pos():
    state = allocate_state(RRWKV, batch=2)
    assert state["state_in.pos"].dtype == np.int64 and state["state_in.pos"].shape == (2,)
    assert "state_in.1.ffn_m" in state


def test_allocate_bad_batch():
    with pytest.raises(UserError, match="batch size must be an int >= 1"):
        allocate_state(RWKV4, 0)


def test_validate_infers_batch():
    assert validate_state(RWKV4, allocate_state(RWKV4, 2)) == 2


def test_validate_shape_message():
    state = allocate_state(RWKV4, 1)
    state["state_in.3.att_aa"] = np.zeros((2, 64), np.float32)
    with pytest.raises(UserError) as err:
        validate_state(RWKV4, state, batch=1)
    assert str(err.value) == "state input state_in.3.att_aa has shape [2, 64], spec expects [1, 64]"


def test_validate_dtype_message():
    state = allocate_state(RRWKV, 1)
    state["state_in.pos"] = state["state_in.pos"].astype(np.int32)
    with pytest.raises(UserError, match="state input state_in.pos has dtype int32, spec expects int64"):
        validate_state(RRWKV, state, batch=1)


def test_validate_names():
    state = allocate_state(RWKV4, 1)
    del state["state_in.1.att_bb"]
    state["state_in.9.att_bb"] = np.zeros((1, 64), np.float32)
    with pytest.raises(UserError, match=r"missing \[state_in.1.att_bb\]; unexpected \[state_in.9.att_bb\]"):
        validate_state(RWKV4, state)


def test_save_load_roundtrip(tmp_path):
    state = allocate_state(RRWKV, 2)
    state["state_in.pos"][:] = [3, 5]
    state["state_in.1.att_aa"][:] = 0.25
    path = tmp_path / "s.state"  # the name is kept as given
    save_state_file(path, RRWKV_INFO, state, [3, 5], "test")
    saved = load_state_file(path, RRWKV_INFO)
    assert list(saved.state) == list(state) and saved.positions == (3, 5)
    assert (saved.precision, saved.producer) == ("fp32", "test")
    for name in state:
        np.testing.assert_array_equal(saved.state[name], state[name])
        assert saved.state[name].dtype == state[name].dtype


def test_fp16_slots_widen_in_the_file_and_narrow_on_load(tmp_path):
    """An fp16 export's float16 slots are stored as F32, so fp32 and fp16 exports of one checkpoint share files."""
    fp16 = dataclasses.replace(RRWKV_INFO, state=RRWKV_CFG.state_spec("float16"), precision="fp16")
    state = allocate_state(fp16.state, 1)
    state["state_in.0.att_xx"][:] = np.float16(1 / 3)
    path = tmp_path / "s.state"
    save_state_file(path, fp16, state, [0], "test")
    with safe_open(path, "np") as f:
        assert f.get_tensor("state_in.0.att_xx").dtype == np.float32
    as_fp32 = load_state_file(path, RRWKV_INFO)
    assert as_fp32.precision == "fp16" and as_fp32.state["state_in.0.att_xx"].dtype == np.float32
    back = load_state_file(path, fp16).state["state_in.0.att_xx"]
    assert back.dtype == np.float16 and (back == np.float16(1 / 3)).all()


def test_files_are_safetensors(tmp_path):
    """safetensors reads what save_state_file writes, and load_state_file reads what safetensors writes."""
    state = allocate_state(RRWKV, 1)
    state["state_in.pos"][:] = 4
    path = tmp_path / "s.state"
    save_state_file(path, RRWKV_INFO, state, [4], "test")
    with safe_open(path, "np") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    assert metadata["format"] == "rrwkv-state" and metadata["positions"] == "[4]"
    assert metadata["fingerprint"] == RRWKV_INFO.fingerprint and metadata["family"] == "rrwkv"
    save_file(dict(reversed(tensors.items())), path, metadata=metadata)  # another writer, another order
    np.testing.assert_array_equal(load_state_file(path, RRWKV_INFO).state["state_in.pos"], [4])


def test_load_validates(tmp_path):
    path = tmp_path / "s.state"
    save_state_file(path, RRWKV_INFO, allocate_state(RRWKV, 2), [0, 0], "test")
    with pytest.raises(UserError, match=r"state file .*s.state has 2 positions \(batch rows\), expected 1"):
        load_state_file(path, RRWKV_INFO, batch=1)
    other = dataclasses.replace(RRWKV_INFO, fingerprint="ab" * 32)
    with pytest.raises(UserError, match="was saved from another model"):
        load_state_file(path, other)


def test_load_missing_and_garbage(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_state_file(tmp_path / "nope.state", RRWKV_INFO)
    bad = tmp_path / "bad.state"
    bad.write_text("not a state file")
    with pytest.raises(UserError, match="declares a header of"):
        load_state_file(bad, RRWKV_INFO)


def test_save_to_missing_dir(tmp_path):
    with pytest.raises(UserError, match="cannot write state file"):
        save_state_file(tmp_path / "no" / "s.state", RRWKV_INFO, allocate_state(RRWKV, 1), [0], "test")


def test_models_without_fingerprint_save_and_load_nothing(tmp_path):
    """Exports made before fingerprints existed: their states could not be told from another model's."""
    old = dataclasses.replace(RRWKV_INFO, fingerprint=None)
    with pytest.raises(UserError, match=r"old.onnx has no rrwkv.fingerprint .*re-export it"):
        save_state_file(tmp_path / "s.state", old, allocate_state(RRWKV, 1), [0], "test", model="old.onnx")
    save_state_file(tmp_path / "s.state", RRWKV_INFO, allocate_state(RRWKV, 1), [0], "test")
    with pytest.raises(UserError, match="has no rrwkv.fingerprint"):
        load_state_file(tmp_path / "s.state", old)
