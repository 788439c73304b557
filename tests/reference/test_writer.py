"""python -m rrwkv_trt.reference.writer: user errors before any work is done, and the PyTorch session adapter.

The full path (export, reference, compare, polygraphy run) is exercised on a tiny model in
tests/runtime/test_compare.py.
"""
import numpy as np
import onnx
import pytest
import torch
from helpers import assert_close, tolerance
from onnx import TensorProto, helper
from safetensors.torch import save_file

from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.reference.torch_session import TorchSession
from rrwkv_trt.reference.writer import main, write_reference
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import ModelInfo, to_metadata

SIZES = dict(vocab_size=50, n_embd=16, n_layer=2, dim_att=16, dim_ffn=32)


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file(random_blinkdl_state_dict(RrwkvConfig(**SIZES, medium_interval=4), seed=5),
              str(folder / "model.safetensors"))
    return folder


def _model_with_metadata(out_dir, config):
    """A model folder whose model.onnx carries `config` in its metadata (the graph itself is a stand-in)."""
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    helper.set_model_props(model, to_metadata(ModelInfo(config, config.state_spec(), "fp32")))
    out_dir.mkdir()
    onnx.save(model, str(out_dir / "model.onnx"))
    return out_dir


def test_other_model_is_refused(checkpoint, tmp_path):
    other = RrwkvConfig(**SIZES, medium_interval=8)  # same sizes, another window: another model
    out = _model_with_metadata(tmp_path / "out", other)
    with pytest.raises(UserError, match=r"was exported from a different model .* re-export with `rrwkv-trt export"):
        write_reference(checkpoint, out)
    assert not (out / "reference").exists()


def test_cli_errors_exit_2(checkpoint, tmp_path, capsys):
    assert main([str(checkpoint), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "export the checkpoint first" in err[0]


@torch.no_grad()
def test_torch_session_step_equals_prefill(checkpoint):
    """The adapter's step form continues its sequence form, state keyed by state_in.* names."""
    ids = np.random.default_rng(1).integers(0, SIZES["vocab_size"], (1, 9))
    atol, rtol = tolerance("wkv4_medium", "export_fp32", "y")  # two fp32 evaluations of the same model
    with TorchSession(checkpoint) as sess:
        logits, _ = sess.run(ids)
        _, state = sess.run(ids[:, :5])
        sess.start_decode(state)
        for t in range(5, 9):
            row = sess.step(ids[:, t])
            assert_close(f"step {t} logits", logits[:, t], row, atol, rtol)
        assert list(sess.decode_state()) == sess.spec.input_names()
        assert sess.decode_state()["state_in.pos"].tolist() == [9]
