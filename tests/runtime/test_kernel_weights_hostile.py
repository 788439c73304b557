"""A hostile kernel-weights index (model.onnx.kernel-weights.json): paths out of the model folder, wrong types,
overlapping or too many entries, names the graph does not have or does not give to rrwkv nodes only. Each is a
UserError before anything is allocated or handed to ONNX Runtime (core/kernel_weights.py,
runtime/backends/huge_pages.py); a valid index loads exactly the graph's bytes."""
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st
from onnx import numpy_helper
from safetensors.torch import save_file

from rrwkv_trt.cli.main import main
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.kernel_weights import KERNEL_WEIGHTS_SUFFIX
from rrwkv_trt.export import model_folder
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.export.quantize import quantize_export
from rrwkv_trt.runtime.backends import huge_pages
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.runtime.onnx_reader import read_graph
from rrwkv_trt.runtime.tokenizer import byte_level_tokenizer

CFG = RrwkvConfig(vocab_size=256, n_embd=16, n_layer=1, dim_att=16, dim_ffn=64, medium_interval=3)
INDEX = "model.onnx" + KERNEL_WEIGHTS_SUFFIX


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> Path:
    """An int8 RRWKV export with external data, so with a kernel-weights index, and a tokenizer (for the CLI)."""
    src = tmp_path_factory.mktemp("ckpt")
    save_file(random_blinkdl_state_dict(CFG, seed=3), str(src / "model.safetensors"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_folder, "EXTERNAL_DATA_MIN_BYTES", 0)
        fp32 = export_checkpoint(load_checkpoint(src, family="rrwkv"), tmp_path_factory.mktemp("fp32") / "onnx")
        out = quantize_export(fp32, tmp_path_factory.mktemp("int8") / "onnx", "int8")
    byte_level_tokenizer().save(str(out / "tokenizer.json"))
    return out


@pytest.fixture(scope="module")
def weights(int8_model) -> dict[str, np.ndarray]:
    """Every initializer's value, from onnx: what an accepted index must load."""
    proto = onnx.load(str(int8_model / "model.onnx"))
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


@pytest.fixture(scope="module", autouse=True)
def all_weights_in_huge_pages():
    with pytest.MonkeyPatch.context() as mp:  # module scope: hypothesis refuses function-scoped fixtures
        mp.setattr(huge_pages, "MIN_BYTES", 0)  # the tiny model's kernel weights fill no 2 MiB page
        yield


def _copy(model: Path, dest: Path) -> Path:
    shutil.copytree(model, dest)
    return dest


def _index(model_dir: Path) -> dict:
    return json.loads((model_dir / INDEX).read_text())


def _write(model_dir: Path, index) -> None:
    (model_dir / INDEX).write_text(json.dumps(index))


def _load(model_dir: Path):
    return huge_pages.load_custom_op_weights(model_dir / "model.onnx")


def test_a_valid_index_loads_the_graphs_bytes(int8_model, weights):
    loaded = _load(int8_model)
    assert loaded is not None and {t["name"] for t in _index(int8_model)["tensors"]} == set(loaded.arrays)
    for name, array in loaded.arrays.items():
        np.testing.assert_array_equal(array, weights[name])
        assert array.dtype == weights[name].dtype


def _external_fp32(model_dir: Path) -> dict:
    """An index entry for an external initializer that standard ONNX nodes read (ORT's, not the kernels')."""
    graph = read_graph(model_dir / "model.onnx")
    readers = graph.reader_domains()
    init = next(i for name, i in graph.initializers.items() if i.external and readers.get(name) == {""})
    return {"name": init.name, "dtype": "float32", "shape": init.dims, "offset": int(init.external["offset"]),
            "length": int(init.external["length"])}


@pytest.mark.parametrize("change, message", [
    (lambda ix, d: ix.update(data_file="../" + d.name + "/model.onnx.data"), "must be a plain file name"),
    (lambda ix, d: ix.update(data_file=str(d / "model.onnx.data")), "must be a plain file name"),
    (lambda ix, d: ix.update(data_file=7), "must be a plain file name"),
    (lambda ix, d: ix.update(format_version=True), "format_version True, expected 1"),
    (lambda ix, d: ix.update(data_bytes=float(ix["data_bytes"])), "from different exports"),
    (lambda ix, d: ix["tensors"][0].update(offset="0"), r"offset '0' must be an int >= 0"),
    (lambda ix, d: ix["tensors"][0].update(length=-4), r"length -4 must be an int >= 0"),
    (lambda ix, d: ix["tensors"][0].update(shape=[2**40, 2**40]), "needs"),
    (lambda ix, d: ix["tensors"][0].update(shape="16"), "must be a list of at most 8 ints"),
    (lambda ix, d: ix["tensors"][0].update(dtype="O"), "dtype 'O' is not one of"),
    (lambda ix, d: ix["tensors"][0].update(dtype=">i1"), "dtype '>i1' is not one of"),
    (lambda ix, d: ix["tensors"].append(dict(ix["tensors"][0])), "listed twice"),
    (lambda ix, d: ix["tensors"].append(dict(ix["tensors"][0], name="copy")), "overlaps the tensor before it"),
    (lambda ix, d: ix.update(tensors=[dict(ix["tensors"][0], name=f"t{i}") for i in range(100_000)]), "overlaps"),
    (lambda ix, d: ix.update(tensors=[dict(ix["tensors"][0], name=f"t{i}") for i in range(200_000)]),
     "more than a kernel-weights index can"),
    (lambda ix, d: ix["tensors"][0].update(name="input_ids"), "is not an external initializer of model.onnx"),
    (lambda ix, d: ix["tensors"].append(_external_fp32(d)), "not by rrwkv nodes only"),
    (lambda ix, d: ix["tensors"][0].update(dtype="uint8"), "the graph has it as int8"),
    (lambda ix, d: ix["tensors"][0].update(shape=ix["tensors"][0]["shape"][::-1]), "the graph has it as"),
])
def test_a_hostile_index_is_refused(int8_model, tmp_path, change, message):
    model_dir = _copy(int8_model, tmp_path / "m")
    index = _index(model_dir)
    index["tensors"].sort(key=lambda t: t["offset"])
    change(index, model_dir)
    _write(model_dir, index)
    with pytest.raises(UserError, match=message):
        _load(model_dir)


def test_a_data_file_linked_out_of_the_folder_is_refused(int8_model, tmp_path):
    model_dir = _copy(int8_model, tmp_path / "m")
    outside = tmp_path / "elsewhere.data"
    (model_dir / "model.onnx.data").rename(outside)
    os.symlink(outside, model_dir / "model.onnx.data")
    with pytest.raises(UserError, match=r"data_file 'model.onnx.data' is a link to .*elsewhere.data, outside"):
        _load(model_dir)


def test_an_oversized_index_is_refused_unread(int8_model, tmp_path, monkeypatch):
    model_dir = _copy(int8_model, tmp_path / "m")
    from rrwkv_trt.core import kernel_weights
    monkeypatch.setattr(kernel_weights, "MAX_INDEX_BYTES", 100)
    with pytest.raises(UserError, match=r"more than a kernel-weights index can \(100\)"):
        _load(model_dir)


def test_a_deeply_nested_index_is_refused(int8_model, tmp_path):
    model_dir = _copy(int8_model, tmp_path / "m")
    (model_dir / INDEX).write_text("[" * 100_000)
    with pytest.raises(UserError, match="is not a valid kernel-weights index"):
        _load(model_dir)


@pytest.mark.skipif(find_custom_ops_library() is None, reason="build/librrwkv_ort_ops.so not built (`make plugins`)")
def test_the_cli_reports_a_hostile_index_in_one_line(int8_model, tmp_path):
    model_dir = _copy(int8_model, tmp_path / "m")
    index = _index(model_dir)
    index["tensors"][0]["name"] = "state_in.0.att_aa"  # a graph input: add_initializer would replace it
    _write(model_dir, index)
    with pytest.raises(UserError, match="is not an external initializer"):
        OrtSession(model_dir)
    result = CliRunner().invoke(main, ["run", str(model_dir), "--prompt", "ab", "--max-new-tokens", "1"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and "is not an external initializer" in result.stderr


# --- Property-based: mutate the valid index (and its data file); each run loads the right bytes or is refused ---

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                 max_size=3), max_leaves=6)
_NUMBERS = st.integers(-2**64, 2**64) | st.sampled_from([0, 1, 16, 64, 1024]) | st.floats(allow_nan=False)
_FIELDS = ("name", "dtype", "shape", "offset", "length")
_PATHS = st.sampled_from(["../onnx/model.onnx.data", "/etc/hostname", "model.onnx", ".", "", "model.onnx.data/",
                          "sub/model.onnx.data", "config.json", "model.onnx.data\0"])


@st.composite
def _mutation(draw):
    """(what, arguments) for one change of the index (or the data file)."""
    kind = draw(st.sampled_from(["field", "number", "drop", "duplicate", "grow", "path", "top", "truncate_data",
                                 "truncate_json", "flip_json"]))
    return kind, draw(st.integers(0, 2**16)), draw(st.sampled_from(_FIELDS)), draw(_JSON), draw(_NUMBERS), \
        draw(_PATHS)


def _mutate(model_dir: Path, mutation) -> None:
    k = mutation[1]
    try:
        text = (model_dir / INDEX).read_bytes().decode()  # a flipped byte may have left it no UTF-8
        index = json.loads(text)
        tensors = index["tensors"]
        entry = tensors[k % len(tensors)]
        entry["name"]
    except (ValueError, TypeError, KeyError, ZeroDivisionError):
        return  # an earlier mutation left no entry to change: the index is already hostile enough
    try:
        _apply(model_dir, index, tensors, entry, text, mutation)
    except (ValueError, TypeError, KeyError, ZeroDivisionError, AttributeError):
        return  # an earlier mutation changed what this one edits (a dropped field, a null shape): skip it


def _apply(model_dir: Path, index: dict, tensors: list, entry: dict, text: str, mutation) -> None:
    kind, k, field, anything, number, path = mutation
    if kind == "field":
        entry[field] = anything
    elif kind == "number":
        entry[("offset", "length", "shape")[k % 3]] = number if k % 3 < 2 else [number, 64]
    elif kind == "drop":
        entry.pop(field, None)  # an earlier mutation may have dropped it already
    elif kind == "duplicate":
        tensors.append(dict(entry, name=entry["name"] if k % 2 else f"{entry['name']}.{k}"))
    elif kind == "grow":
        entry["shape"] = [d * (k % 5 + 2) for d in entry["shape"]]
        entry["length"] *= k % 5 + 2
    elif kind == "path":
        index["data_file"] = path
    elif kind == "top":
        index[("format_version", "data_bytes", "data_file", "tensors")[k % 4]] = anything
    elif kind == "truncate_data":
        data = model_dir / "model.onnx.data"
        data.write_bytes(data.read_bytes()[:k % data.stat().st_size])
        index["data_bytes"] = k % (data.stat().st_size + 1)
    if kind == "truncate_json":
        (model_dir / INDEX).write_text(text[:k % len(text)])
    elif kind == "flip_json":
        raw = bytearray(text.encode())
        raw[k % len(raw)] ^= 1 << (k // len(raw)) % 8
        (model_dir / INDEX).write_bytes(bytes(raw))
    else:
        _write(model_dir, index)


@pytest.mark.fuzz
@given(mutations=st.lists(_mutation(), min_size=1, max_size=3))
def test_fuzz_kernel_weights_index(int8_model, weights, mutations):
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _copy(int8_model, Path(tmp) / "m")
        for mutation in mutations:
            _mutate(model_dir, mutation)
        try:
            loaded = _load(model_dir)
        except UserError:
            return
        for name, array in (loaded.arrays if loaded else {}).items():  # accepted: exactly the graph's tensors
            assert array.dtype == weights[name].dtype
            np.testing.assert_array_equal(array, weights[name])
