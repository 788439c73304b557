"""Large exports keep their weights in model.onnx.data (export/model_folder.py: EXTERNAL_DATA_MIN_BYTES): ONNX
Runtime loads them, the results equal a one-file export, and model_sha256 covers the weights. The kernel-weights
index beside them (export/kernel_weights.py) lets OrtSession load the rrwkv kernels' weights into huge pages."""
import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from rrwkv_trt.export import model_folder, onnx_export
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.quantize import quantize_export
from rrwkv_trt.core.kernel_weights import KERNEL_WEIGHTS_SUFFIX
from rrwkv_trt.runtime.backends import huge_pages
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import model_sha256

CFG = Rwkv4Config(vocab_size=40, n_embd=16, n_layer=1, dim_att=16, dim_ffn=64)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(one-file export, external-data export) of one checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "m.pth"
    torch.save(random_blinkdl_state_dict(CFG, seed=5), path)
    ckpt = load_checkpoint(path)
    single = onnx_export.export_checkpoint(ckpt, tmp_path_factory.mktemp("one") / "onnx")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_folder, "EXTERNAL_DATA_MIN_BYTES", 0)
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
        mp.setattr(model_folder, "EXTERNAL_DATA_MIN_BYTES", 0)
        out = quantize_export(split, tmp_path / "int8", "int8")
    assert (out / "model.onnx.data").is_file()
    with OrtSession(split) as ref, OrtSession(out) as q:
        ids = np.array([[3, 4]], dtype=np.int64)
        assert np.abs(ref.run(ids)[0] - q.run(ids)[0]).max() < 0.1


@pytest.fixture(scope="module")
def int8_split(exports, tmp_path_factory):
    """An int8 export of the external-data export, itself with external data (and so a kernel-weights index)."""
    _, split = exports
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_folder, "EXTERNAL_DATA_MIN_BYTES", 0)
        return quantize_export(split, tmp_path_factory.mktemp("q") / "int8", "int8")


def _index(model_dir):
    return json.loads((model_dir / f"model.onnx{KERNEL_WEIGHTS_SUFFIX}").read_text())


def test_kernel_weights_index_lists_what_only_rrwkv_nodes_read(int8_split):
    proto = onnx.load(int8_split / "model.onnx", load_external_data=False)
    index = _index(int8_split)
    names = [t["name"] for t in index["tensors"]]
    rrwkv_inputs = {i for n in proto.graph.node if n.domain == "rrwkv" for i in n.input}
    other_inputs = {i for n in proto.graph.node if n.domain != "rrwkv" for i in n.input}
    assert names and set(names) <= rrwkv_inputs - other_inputs
    # Every external MatMulW8 weight is listed (this tiny model keeps the rest under onnx's 1 KiB threshold inline).
    external = {i.name: {e.key: e.value for e in i.external_data} for i in proto.graph.initializer
                if i.data_location == onnx.TensorProto.EXTERNAL}
    w8 = {n.input[1] for n in proto.graph.node if n.op_type == "MatMulW8"}
    assert w8 and w8 <= set(external) and w8 <= set(names)
    assert index["data_bytes"] == (int8_split / index["data_file"]).stat().st_size
    for t in index["tensors"]:
        assert (t["offset"], t["length"]) == (int(external[t["name"]]["offset"]), int(external[t["name"]]["length"]))


def test_huge_page_weights_give_the_same_results(int8_split, monkeypatch):
    if find_custom_ops_library() is None:
        pytest.skip("build/librrwkv_ort_ops.so not built (`make plugins`)")
    monkeypatch.setattr(huge_pages, "MIN_BYTES", 0)  # the tiny model's kernel weights fill no 2 MiB page
    ids = np.array([[3, 4, 7, 1, 0]], dtype=np.int64)
    with OrtSession(int8_split, huge_pages=True) as hp, OrtSession(int8_split, huge_pages=False) as mapped:
        assert hp.huge_page_bytes >= sum(t["length"] for t in _index(int8_split)["tensors"])
        assert mapped.huge_page_bytes == 0
        (a, sa), (b, sb) = hp.run(ids), mapped.run(ids)
        np.testing.assert_array_equal(a, b)
        for session, state in ((hp, sa), (mapped, sb)):
            session.start_decode(state)
        for token in (5, 9, 2):
            np.testing.assert_array_equal(hp.step(token), mapped.step(token))
    monkeypatch.setattr(huge_pages, "MIN_BYTES", huge_pages.HUGE_PAGE)
    with OrtSession(int8_split) as small:
        assert small.huge_page_bytes == 0  # below one huge page: ORT keeps its mapping


@pytest.mark.parametrize("precision, op_type, dtype", [("w16", "MatMulWF16", "float16"), ("int4", "MatMulW4", "int8")])
def test_packed_weights_in_huge_pages_give_the_same_results(exports, tmp_path, monkeypatch, precision, op_type, dtype):
    """A w16 (int4) export with external data lists every MatMulWF16 (MatMulW4) weight in its index; read into huge
    pages they give the mapped weights' bits."""
    if find_custom_ops_library() is None:
        pytest.skip("build/librrwkv_ort_ops.so not built (`make plugins`)")
    _, split = exports
    monkeypatch.setattr(model_folder, "EXTERNAL_DATA_MIN_BYTES", 0)
    out = quantize_export(split, tmp_path / precision, precision)
    proto = onnx.load(out / "model.onnx", load_external_data=False)
    weights = {n.input[1] for n in proto.graph.node if n.op_type == op_type}
    listed = {t["name"]: t["dtype"] for t in _index(out)["tensors"]}
    assert weights and all(listed.get(w) == dtype for w in weights), listed
    monkeypatch.setattr(huge_pages, "MIN_BYTES", 0)  # the tiny model's kernel weights fill no 2 MiB page
    ids = np.array([[3, 4, 7, 1, 0]], dtype=np.int64)
    with OrtSession(out, huge_pages=True) as hp, OrtSession(out, huge_pages=False) as mapped:
        assert hp.huge_page_bytes > 0 and mapped.huge_page_bytes == 0
        np.testing.assert_array_equal(hp.run(ids)[0], mapped.run(ids)[0])


@pytest.mark.parametrize("change, message", [
    (lambda ix: ix.update(data_bytes=ix["data_bytes"] + 1), "from different exports"),
    (lambda ix: ix.update(format_version=99), "not a valid kernel-weights index"),
    (lambda ix: ix["tensors"][0].update(length=ix["tensors"][0]["length"] + 4), "needs"),
    (lambda ix: ix["tensors"][-1].update(offset=ix["data_bytes"]), "lies outside"),
    (lambda ix: ix.pop("tensors"), "not a valid kernel-weights index"),
])
def test_a_bad_kernel_weights_index_is_an_error(int8_split, tmp_path, change, message, monkeypatch):
    model_dir = tmp_path / "copy"
    shutil.copytree(int8_split, model_dir)
    index = _index(model_dir)
    change(index)
    (model_dir / f"model.onnx{KERNEL_WEIGHTS_SUFFIX}").write_text(json.dumps(index))
    monkeypatch.setattr(huge_pages, "MIN_BYTES", 0)
    with pytest.raises(UserError, match=message):
        huge_pages.load_custom_op_weights(model_dir / "model.onnx")


def test_no_index_keeps_the_file_mapping(exports):
    for model_dir in exports:  # one file: no external data; fp32 with external data: its WKV parameters are inline
        assert not (model_dir / f"model.onnx{KERNEL_WEIGHTS_SUFFIX}").exists()
        assert huge_pages.load_custom_op_weights(model_dir / "model.onnx") is None
