"""Large exports keep their weights in model.onnx.data (export/onnx_export.py: EXTERNAL_DATA_MIN_BYTES): ONNX
Runtime loads them, the results equal a one-file export, and model_sha256 covers the weights."""
import numpy as np
import onnx
import pytest
import torch

from rrwkv_trt.export import onnx_export
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.quantize import quantize_export
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.config import Rwkv4Config
from rrwkv_trt.runtime.metadata import model_sha256

CFG = Rwkv4Config(vocab_size=40, n_embd=16, n_layer=1, dim_att=16, dim_ffn=64)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(one-file export, external-data export) of one checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "m.pth"
    torch.save(random_blinkdl_state_dict(CFG, seed=5), path)
    ckpt = load_checkpoint(path)
    single = onnx_export.export_checkpoint(ckpt, tmp_path_factory.mktemp("one") / "onnx")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx_export, "EXTERNAL_DATA_MIN_BYTES", 0)
        split = onnx_export.export_checkpoint(ckpt, tmp_path_factory.mktemp("two") / "onnx")
    return single, split


def test_layout_and_results(exports):
    single, split = exports
    assert sorted(p.name for p in single.iterdir()) == ["config.json", "model.onnx"]
    assert sorted(p.name for p in split.iterdir()) == ["config.json", "model.onnx", "model.onnx.data"]
    assert (split / "model.onnx.data").stat().st_mode & 0o777 == 0o644
    graph_only = onnx.load(split / "model.onnx", load_external_data=False)
    big = [i for i in graph_only.graph.initializer if np.prod(i.dims) * 4 >= 1024]
    assert big and all(i.data_location == onnx.TensorProto.EXTERNAL for i in big)
    # onnx.load follows the reference: the same weights as the one-file export.
    a, b = onnx.load(single / "model.onnx"), onnx.load(split / "model.onnx")
    assert {i.name: i.raw_data for i in a.graph.initializer} == {i.name: i.raw_data for i in b.graph.initializer}
    ids = np.array([[1, 5, 9, 2]], dtype=np.int64)
    with OrtSession(single) as s1, OrtSession(split) as s2:
        np.testing.assert_array_equal(s1.run(ids)[0], s2.run(ids)[0])


def test_model_sha256_covers_the_weights(exports, tmp_path):
    _, split = exports
    before = model_sha256(split / "model.onnx")
    data = split / "model.onnx.data"
    original = data.read_bytes()
    try:
        data.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        assert model_sha256(split / "model.onnx") != before
    finally:
        data.write_bytes(original)
    assert model_sha256(split / "model.onnx") == before


def test_quantize_an_external_data_export(exports, tmp_path):
    _, split = exports
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx_export, "EXTERNAL_DATA_MIN_BYTES", 0)
        out = quantize_export(split, tmp_path / "int8", "int8")
    assert (out / "model.onnx.data").is_file()
    with OrtSession(split) as ref, OrtSession(out) as q:
        ids = np.array([[3, 4]], dtype=np.int64)
        assert np.abs(ref.run(ids)[0] - q.run(ids)[0]).max() < 0.1
