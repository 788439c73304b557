import numpy as np
import pytest

from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import PP_INIT, Rwkv4Config
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.state import allocate_state, load_state, save_state, validate_state

RWKV4 = Rwkv4Config(vocab_size=50, n_embd=8, n_layer=4, dim_att=64, dim_ffn=32).state_spec()
RRWKV = RrwkvConfig(vocab_size=50, n_embd=8, n_layer=2, dim_att=8, dim_ffn=32).state_spec()


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
    path = tmp_path / "s.state"  # not .npz: the name is kept as given
    save_state(path, RRWKV, state)
    loaded = load_state(path, RRWKV)
    assert list(loaded) == list(state)
    for name in state:
        np.testing.assert_array_equal(loaded[name], state[name])


def test_load_validates(tmp_path):
    path = tmp_path / "s.npz"
    save_state(path, RRWKV, allocate_state(RRWKV, 2))
    with pytest.raises(UserError, match=r"state file .*s.npz: state input state_in.0.att_xx has shape \[2, 8\], "
                                        r"spec expects \[1, 8\]"):
        load_state(path, RRWKV, batch=1)
    with pytest.raises(UserError, match="does not match the model's state spec"):
        load_state(path, RWKV4)


def test_load_missing_and_garbage(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_state(tmp_path / "nope.npz", RWKV4)
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(UserError, match="is not an .npz"):
        load_state(bad, RWKV4)


def test_save_to_missing_dir(tmp_path):
    with pytest.raises(UserError, match="cannot write state file"):
        save_state(tmp_path / "no" / "s.npz", RWKV4, allocate_state(RWKV4, 1))
