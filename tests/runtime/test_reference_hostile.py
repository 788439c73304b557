"""A hostile PyTorch reference folder (reference.json, outputs.json) ends in a UserError, never another exception.

The folder here is synthetic (write_folder over a fake model's spec: zero logits, the initial state), so no torch is
needed; tests/runtime/test_compare.py covers a real one.
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fake_model import build_fake_model
from hypothesis import given
from hypothesis import strategies as st

from rrwkv_trt.cli.main import main
from rrwkv_trt.core import reference_format as fmt
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import from_metadata, model_sha256
from rrwkv_trt.core.names import LOGITS
from rrwkv_trt.runtime import reference_files

pytest.importorskip("polygraphy", reason="the reference folder's files are Polygraphy's formats ([dev] extra)")

VOCAB, PROMPT, DECODE = 16, [1, 2, 3], [4, 5]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


def write_reference_folder(model_dir: Path) -> Path:
    """MODEL/reference/ for the fake model: valid manifest, zero logits and the spec's initial state."""
    import onnx

    info = from_metadata({p.key: p.value for p in onnx.load(str(model_dir / "model.onnx")).metadata_props})
    spec = info.state
    outputs = []
    for ids in [PROMPT, *([t] for t in DECODE)]:
        state = {t.output_name: np.full(spec.concrete_shape(t.slot, 1), t.slot.init, dtype=t.slot.dtype)
                 for t in spec.tensors()}
        outputs.append({LOGITS: np.zeros((1, len(ids), VOCAB), np.float32), **state})
    manifest = {"config": info.config.to_dict(), "state_spec": spec.to_dict(), "precision": "fp32",
                "logits_from": False, "prompt_ids": PROMPT, "decode_ids": DECODE,
                "model_sha256": model_sha256(model_dir / "model.onnx")}
    return reference_files.write_folder(model_dir, manifest, [{}] * len(outputs), outputs)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = build_fake_model(tmp_path_factory.mktemp("hostile") / "m", family="rrwkv", vocab_size=VOCAB)
    write_reference_folder(out)
    return out


def _compare(model: Path):
    return CliRunner().invoke(main, ["compare", str(model), "--steps", "0"])


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "copy"))


def _assert_one_error_line(result, *expected: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert all(e in lines[0] for e in expected), lines[0]


def test_the_synthetic_reference_is_valid(model_dir):
    ref = fmt.load_reference(model_dir)
    feeds = fmt.reference_feeds(ref, reference_files.read_outputs(ref))
    assert len(feeds) == ref.iterations == 1 + len(DECODE)


@pytest.mark.parametrize("content, expected", [
    (b"not json at all", "outputs.json is not UTF-8 JSON"),
    (b"\xff\xfe{}", "outputs.json is not UTF-8 JSON"),
    (b"[" * 100_000, "outputs.json is not UTF-8 JSON (RecursionError"),
    (b"[]", "expected a Polygraphy RunResults object"),
])
def test_compare_on_a_garbled_outputs_json_exits_2(model_dir, tmp_path, content, expected):
    model = _copy(model_dir, tmp_path)
    (model / "reference" / fmt.OUTPUTS_FILE).write_bytes(content)
    _assert_one_error_line(_compare(model), expected, "python -m rrwkv_trt.reference.writer")


@pytest.mark.parametrize("content, expected", [
    (b"[1, 2]", "must hold a JSON object"),
    (b"\xff{}", "is not UTF-8 text"),
    (b"[" * 100_000, "nests JSON arrays or objects too deeply"),
])
def test_compare_on_a_garbled_manifest_exits_2(model_dir, tmp_path, content, expected):
    model = _copy(model_dir, tmp_path)
    (model / "reference" / fmt.MANIFEST_FILE).write_bytes(content)
    _assert_one_error_line(_compare(model), "reference manifest", expected)


def _edit_manifest(folder: Path, **fields) -> None:
    path = folder / fmt.MANIFEST_FILE
    path.write_text(json.dumps(json.loads(path.read_text()) | fields))


@pytest.mark.parametrize("fields, expected", [
    ({"prompt_ids": [1, VOCAB]}, f"'prompt_ids' holds {VOCAB}, expected token ids in [0, {VOCAB})"),
    ({"prompt_ids": [1.5]}, "'prompt_ids' holds 1.5"),
    ({"decode_ids": [True]}, "'decode_ids' holds True"),
    ({"prompt_ids": [None]}, "'prompt_ids' holds None"),
    ({"prompt_ids": []}, "'prompt_ids' holds 0 ids, expected 1 to"),
    ({"decode_ids": [0] * (fmt.MAX_REFERENCE_TOKENS + 1)}, "'decode_ids' holds 65537 ids"),
    ({"state_spec": []}, "'state_spec' must be a JSON object, got list"),
    ({"logits_from": 0}, "'logits_from' must be a JSON boolean"),
    ({"config": {"family": "rrwkv", "format_version": 1}}, "rrwkv config is missing fields"),
])
def test_malformed_manifest_fields_are_named(model_dir, tmp_path, fields, expected):
    folder = _copy(model_dir, tmp_path) / "reference"
    _edit_manifest(folder, **fields)
    with pytest.raises(UserError) as err:
        fmt.read_reference(folder)
    assert expected in str(err.value) and "reference.writer" in str(err.value), str(err.value)


def test_state_spec_layers_and_initial_values_are_checked(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path) / "reference"
    spec = json.loads((folder / fmt.MANIFEST_FILE).read_text())["state_spec"]
    _edit_manifest(folder, state_spec=spec | {"n_layer": 10**9})
    with pytest.raises(UserError, match=r"n_layer must be an int in \[1, 4096\], got 1000000000"):
        fmt.read_reference(folder)
    _edit_manifest(folder, state_spec=spec | {"n_layer": 2})
    with pytest.raises(UserError, match="state_spec has n_layer 2, its config 1"):
        fmt.read_reference(folder)
    slots = [s | {"init": 1e30} if s["dtype"] == "int64" else s for s in spec["slots"]]
    _edit_manifest(folder, state_spec=spec | {"slots": slots})
    with pytest.raises(UserError, match=r"state slot pos: init 1e\+30 is not a int64 value"):
        fmt.read_reference(folder)


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode()


def _replace_logits(folder: Path, iteration: int, payload: str) -> None:
    path = folder / fmt.OUTPUTS_FILE
    data = json.loads(path.read_text())
    data["lst"][0][1][iteration]["outputs"][LOGITS]["values"]["array"] = payload
    path.write_text(json.dumps(data))


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_array_headers_must_match_their_data(model_dir, tmp_path):
    """A header declaring a huge shape over a few bytes is refused before anything is allocated."""
    folder = _copy(model_dir, tmp_path) / "reference"
    small = base64.b64decode(_npy(np.zeros((1, 3, VOCAB), np.float32)))
    for payload, expected in [
        (base64.b64encode(small[:-4]).decode(), "its .npy header declares float32 [1, 3, 16] over 188 bytes"),
        (base64.b64encode(_npy_header((10**6, 10**6)) + bytes(4)).decode(),
         "declares float32 [1000000, 1000000] over 4 bytes"),
        (base64.b64encode(small[:small.index(b"}")]).decode(), "not a base64 .npy array"),
        ("!!!", "not a base64 .npy array"),
        (_npy(np.array(["a"])), "expected a numeric array"),
    ]:
        _replace_logits(folder, 0, payload)
        with pytest.raises(UserError) as err:
            reference_files.read_outputs(fmt.read_reference(folder))
        assert expected in str(err.value), str(err.value)


def test_outputs_must_match_the_manifest(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path) / "reference"
    _replace_logits(folder, 1, _npy(np.zeros((1, 2, VOCAB), np.float32)))
    with pytest.raises(UserError, match=r"iteration 1: logits is float32 \[1, 2, 16\], expected float32 \[1, 1, 16\]"):
        reference_files.read_outputs(fmt.read_reference(folder))
    _replace_logits(folder, 1, _npy(np.zeros((1, 1, VOCAB), np.float64)))
    with pytest.raises(UserError, match=r"logits is float64 \[1, 1, 16\], expected float32"):
        reference_files.read_outputs(fmt.read_reference(folder))
    path = folder / fmt.OUTPUTS_FILE
    data = json.loads(path.read_text())
    outputs = data["lst"][0][1][0]["outputs"]
    outputs["extra"] = outputs.pop(LOGITS)
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="iteration 0: unexpected output 'extra'"):
        reference_files.read_outputs(fmt.read_reference(folder))


# Property-based: mutations of the valid folder's files end in a correct result or a UserError.

def _read_all(folder: Path) -> None:
    """What compare and the Polygraphy data loader do with a folder; a success must be self-consistent."""
    ref = fmt.read_reference(folder)
    feeds = fmt.reference_feeds(ref, reference_files.read_outputs(ref))
    assert len(feeds) == ref.iterations


def _with_file(model_dir: Path, name: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(shutil.copytree(model_dir / "reference", Path(tmp) / "reference"))
        (folder / name).write_bytes(content)
        try:
            _read_all(folder)
        except UserError:
            pass


def _mutate_bytes(data, content: bytes) -> bytes:
    cut = data.draw(st.integers(0, len(content)))
    if data.draw(st.booleans()):
        return content[:cut]
    flip = data.draw(st.integers(0, 255))
    return content[:cut] + bytes([flip]) + content[cut + 1:]


def _mutate_json(data, value):
    """`value` with one node (picked by `data`) replaced, deleted or, for a list, grown or shrunk."""
    if isinstance(value, (dict, list)) and value and data.draw(st.booleans()):
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        key = data.draw(st.sampled_from(keys))
        value = value.copy()
        value[key] = _mutate_json(data, value[key])
        return value
    action = data.draw(st.sampled_from(["replace", "delete", "grow"]))
    if action == "replace" or not isinstance(value, (dict, list)):
        return data.draw(json_values)
    value = value.copy()
    if action == "grow":
        if isinstance(value, list):
            return value + value
        return value | {data.draw(st.text(max_size=8)): data.draw(json_values)}
    if value:
        value.pop(data.draw(st.sampled_from(list(value) if isinstance(value, dict) else range(len(value)))))
    return value


@pytest.mark.fuzz
@given(data=st.data(), name=st.sampled_from([fmt.MANIFEST_FILE, fmt.OUTPUTS_FILE]))
def test_fuzz_byte_mutations(model_dir, data, name):
    _with_file(model_dir, name, _mutate_bytes(data, (model_dir / "reference" / name).read_bytes()))


@pytest.mark.fuzz
@given(data=st.data(), name=st.sampled_from([fmt.MANIFEST_FILE, fmt.OUTPUTS_FILE]))
def test_fuzz_structure_mutations(model_dir, data, name):
    value = json.loads((model_dir / "reference" / name).read_text())
    _with_file(model_dir, name, json.dumps(_mutate_json(data, value)).encode())


@pytest.mark.fuzz
@given(shape=st.lists(st.integers(0, 20), max_size=4), dtype=st.sampled_from(["float32", "float16", "int64", "bool"]),
       iteration=st.integers(0, len(DECODE)))
def test_fuzz_grown_arrays(model_dir, shape, dtype, iteration):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(shutil.copytree(model_dir / "reference", Path(tmp) / "reference"))
        _replace_logits(folder, iteration, _npy(np.zeros(shape, dtype)))
        try:
            _read_all(folder)
        except UserError:
            pass
