import numpy as np
import pytest

from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import ModelInfo


def _counts(state: dict) -> dict:
    """Token counts the fake model keeps in its state (att_pp stays at its init)."""
    return {k: v for k, v in state.items() if not k.endswith("att_pp")}


def test_metadata_and_initial_state(fake_model):
    with OrtSession(fake_model) as session:
        assert isinstance(session.info, ModelInfo)
        assert session.vocab_size == 256
        assert list(session.initial_state(2)) == session.spec.input_names()


def test_run_prefill(fake_model):
    with OrtSession(fake_model / "model.onnx", threads=1) as session:
        ids = np.array([[1, 2, 3], [7, 8, 9]], np.int64)
        logits, state = session.run(ids)
        assert logits.shape == (2, 3, 256) and logits.dtype == np.float32
        np.testing.assert_array_equal(logits.argmax(-1), ids + 1)
        assert list(state) == session.spec.input_names()
        for value in _counts(state).values():
            assert (value == 3).all()
        _, state = session.run(ids[:, :1], state)  # the returned state feeds straight back
        assert all((v == 4).all() for v in _counts(state).values())


def test_step_matches_run_and_reuses_buffers(fake_model):
    with OrtSession(fake_model) as session:
        ids = np.array([[5, 6, 7, 8]], np.int64)
        full_logits, full_state = session.run(ids)
        _, state = session.run(ids[:, :1])
        session.start_decode(state)
        rows = [session.step(np.array([t])).copy() for t in ids[0, 1:]]
        np.testing.assert_array_equal(np.stack(rows, 1), full_logits[:, 1:])
        for name, value in session.decode_state().items():
            np.testing.assert_array_equal(value, full_state[name])
        first, second = session.step(9), session.step(10)
        assert np.shares_memory(first, second)  # one logits buffer, overwritten per step
        assert second.argmax() == 11


def test_step_batch2_and_rebatch(fake_model):
    with OrtSession(fake_model) as session:
        session.start_decode(session.initial_state(2))
        np.testing.assert_array_equal(session.step(np.array([1, 200])).argmax(-1), [2, 201])
        session.start_decode(session.initial_state(1))
        assert session.step(3).shape == (1, 256)
        with pytest.raises(UserError, match="step\\(\\) got 2 token ids, the decode state holds batch 1"):
            session.step(np.array([1, 2]))


@pytest.mark.parametrize("ids, match", [
    ([[1, 256]], "token id 256 is out of range for vocab size 256"),
    ([[-1, 3]], "token id -1 is out of range for vocab size 256"),
    ([[1.0, 2.0]], "token ids must be integers"),
    ([1, 2], r"token ids must have shape \[batch, seq\]"),
    (np.zeros((1, 0), np.int64), "no empty dim"),
])
def test_run_rejects_bad_ids(fake_model, ids, match):
    with OrtSession(fake_model) as session:
        with pytest.raises(UserError, match=match):
            session.run(np.asarray(ids))


def test_step_rejects_bad_ids(fake_model):
    with OrtSession(fake_model) as session:
        session.start_decode(session.initial_state(1))
        with pytest.raises(UserError, match="token id 999 is out of range for vocab size 256"):
            session.step(999)


def test_run_rejects_bad_state(make_fake_model):
    with OrtSession(make_fake_model()) as session:
        state = session.initial_state(1)
        state["state_in.0.att_aa"] = np.zeros((1, 5), np.float32)
        with pytest.raises(UserError, match=r"state input state_in.0.att_aa has shape \[1, 5\], spec expects \[1, 4\]"):
            session.run(np.array([[1]]), state)
        with pytest.raises(UserError, match=r"has shape \[1, 4\], spec expects \[2, 4\]"):
            session.run(np.array([[1], [2]]), session.initial_state(1))


def test_step_before_start_and_after_close(make_fake_model):
    session = OrtSession(make_fake_model())
    with pytest.raises(RuntimeError, match="before start_decode"):
        session.step(1)
    session.close()
    with pytest.raises(RuntimeError, match="is closed"):
        session.run(np.array([[1]]))


def test_missing_model_and_graph_mismatch(tmp_path, make_fake_model):
    with pytest.raises(UserError, match="has no model.onnx"):
        OrtSession(tmp_path)
    with pytest.raises(UserError, match="not found"):
        OrtSession(tmp_path / "nope.onnx")
    with pytest.raises(UserError, match=r"graph inputs do not match .*missing \['state_in.0.ffn_xx'\]"):
        OrtSession(make_fake_model("short", drop_inputs=1))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    with pytest.raises(UserError, match=r"garbage.onnx is not a valid ONNX model \(field 13 has wire type 6\)"):
        OrtSession(garbage)
    garbage.write_bytes(b"\x08\x07")  # a ModelProto with ir_version 7 and no graph: decodes, ORT refuses it
    with pytest.raises(UserError, match="onnxruntime cannot load"):
        OrtSession(garbage)


def test_custom_ops_library_must_exist(make_fake_model, tmp_path):
    with pytest.raises(UserError, match="custom-op library .*librrwkv_ort_ops.so not found"):
        OrtSession(make_fake_model(), custom_ops_library=tmp_path / "librrwkv_ort_ops.so")


def test_session_options(fake_model):
    import onnxruntime as ort

    from rrwkv_trt.runtime.backends.ort import make_session_options

    so = make_session_options(ort, {"enable_mem_pattern": False, "graph_optimization_level": "ORT_ENABLE_BASIC",
                                    "session.intra_op.allow_spinning": "0"})
    assert so.enable_mem_pattern is False
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(UserError, match="unknown ONNX Runtime SessionOptions attribute 'no_such'"):
        make_session_options(ort, {"no_such": 1})
    with pytest.raises(UserError, match="graph_optimization_level 'FAST' is not one of"):
        make_session_options(ort, {"graph_optimization_level": "FAST"})
    with OrtSession(fake_model, session_options={"enable_mem_pattern": False}) as s:
        assert s.run(np.array([[1, 2]]))[0].shape == (1, 2, 256)


def test_last_only_without_logits_from_input(fake_model):
    """Exports older than the logits_from input: run(last_only=True) still returns the last position only."""
    with OrtSession(fake_model) as s:
        assert not s.has_logits_from
        ids = np.array([[1, 2, 3], [4, 5, 6]])
        full, state = s.run(ids)
        last, last_state = s.run(ids, last_only=True)
        np.testing.assert_array_equal(last, full[:, -1:])
        assert all(np.array_equal(state[k], last_state[k]) for k in state)
