"""Hostile state files: load_state_file bounds and checks the safetensors header (length, metadata, every tensor's
dtype, shape and byte range) against the model before reading any tensor, refuses another model's state, non-finite
values and bad positions, and save_state_file never destroys the file it replaces.

The fuzz tests mutate a valid file and accept exactly two outcomes: a state that passes every check, or a UserError;
and neither may allocate much beyond the file's own size."""
import errno
import io
import json
import os
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import numpy_helper

from rrwkv_trt.cli.main import main
from rrwkv_trt.core import files as files_module
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.metadata import ModelInfo
from rrwkv_trt.runtime.safetensors_file import encode
from rrwkv_trt.runtime.state import MAX_POS, allocate_state, validate_state
from rrwkv_trt.runtime.state_file import load_state_file, save_state_file

CONFIG = RrwkvConfig(vocab_size=50, n_embd=8, n_layer=2, dim_att=8, dim_ffn=32)
SPEC = CONFIG.state_spec()
INFO = ModelInfo(CONFIG, SPEC, "fp32", fingerprint="5e" * 32)
NAMES = SPEC.input_names()


def _valid_state(batch: int = 1) -> dict[str, np.ndarray]:
    state = allocate_state(SPEC, batch)
    state["state_in.0.att_aa"][:] = np.arange(8, dtype=np.float32)
    state["state_in.pos"][:] = 5
    return state


def _metadata(batch: int = 1, **changes: str) -> dict[str, str]:
    meta = {"format": "rrwkv-state", "format_version": "1", "fingerprint": INFO.fingerprint, "family": "rrwkv",
            "precision": "fp32", "positions": json.dumps([5] * batch), "producer": "test"}
    return meta | changes


def _file(state: dict[str, np.ndarray] | None = None, batch: int = 1, **changes: str) -> bytes:
    """A state file of `state` (default: the valid one) and `batch` positions, with any tensors and metadata."""
    return encode(_valid_state() if state is None else state, _metadata(batch, **changes))


def _raw(header: object, data: bytes, length: int | None = None) -> bytes:
    """A file of any header value and data, with the header length field `length` (default: the true one)."""
    text = json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def _split(data: bytes) -> tuple[dict, bytes]:
    """A file's header object and its data section."""
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + length]), data[8 + length:]


VALID = _file()
VALID_HEADER, VALID_DATA = _split(VALID)


def _load(data: bytes, tmp_path: Path, batch: int | None = 1, info: ModelInfo = INFO):
    path = tmp_path / "s.state"
    path.write_bytes(data)
    return load_state_file(path, info, batch=batch)


def test_valid_file_loads(tmp_path):
    saved = _load(VALID, tmp_path)
    assert list(saved.state) == NAMES and saved.positions == (5,)
    for name, value in _valid_state().items():
        np.testing.assert_array_equal(saved.state[name], value)


def test_npz_of_earlier_versions_is_refused_with_a_way_out(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, **_valid_state())
    with pytest.raises(UserError, match=r"is an .npz state file of an earlier rrwkv-trt.*rerun the prompt with "
                                        r"--state-out"):
        _load(buffer.getvalue(), tmp_path)


@pytest.mark.parametrize("changes, match", [
    ({"fingerprint": "ab" * 32}, r"was saved from another model \(family 'rrwkv', fingerprint 'abababababababab'"),
    ({"format_version": "2"}, r"has format_version '2'; this rrwkv-trt reads \[1\]"),
    ({"format": "other"}, "is not an rrwkv-trt state file"),
    ({"positions": "[-1]"}, "position -1 of batch row 0 is negative"),
    ({"positions": f"[{MAX_POS}]"}, f"is not below {MAX_POS}"),
    ({"positions": "[5, 5]"}, r"has 2 positions \(batch rows\), expected 1"),
    ({"positions": "5"}, "is not a JSON list of ints"),
    ({"positions": "[true]"}, "is not an int"),
    ({"positions": "[6]"}, r"state_in.pos holds \[5\], but the positions are \[6\]"),
    ({"precision": "fp8"}, "has precision 'fp8'"),
    ({"family": "rwkv4"}, "the file is damaged"),
    ({"extra": "x"}, r"unknown \[extra\]"),
])
def test_metadata_is_checked(tmp_path, changes, match):
    with pytest.raises(UserError, match=match):
        _load(_file(**changes), tmp_path)


def test_missing_metadata_key(tmp_path):
    header = {**VALID_HEADER, "__metadata__": {k: v for k, v in _metadata().items() if k != "producer"}}
    with pytest.raises(UserError, match=r"missing \[producer\]"):
        _load(_raw(header, VALID_DATA), tmp_path)


def test_another_checkpoint_of_equal_shapes_is_refused(tmp_path):
    """The fingerprint, not the shapes, tells models apart."""
    path = tmp_path / "s.state"
    save_state_file(path, INFO, _valid_state(), [5], "test")
    other = ModelInfo(CONFIG, SPEC, "fp32", fingerprint="77" * 32)
    with pytest.raises(UserError, match="a state resumes only on exports of the checkpoint that saved it"):
        load_state_file(path, other)


@pytest.mark.parametrize("name, value, match", [
    ("state_in.0.att_aa", np.nan, "state input state_in.0.att_aa holds NaN or Inf"),
    ("state_in.1.att_pp", -np.inf, "state input state_in.1.att_pp holds NaN or Inf"),
    ("state_in.pos", -1, r"state input state_in.pos holds -1..-1; positions must be in \[0, 281474976710656\)"),
    ("state_in.pos", 2**63 - 1, "positions must be in"),
])
def test_values_are_checked(tmp_path, name, value, match):
    state = _valid_state()
    state[name][...] = value
    with pytest.raises(UserError, match=match):
        _load(_file(state), tmp_path)


def test_float16_overflow_is_refused(tmp_path):
    """A value an fp32 model holds but float16 cannot: the fp16 export refuses the state rather than run on Inf."""
    state = _valid_state()
    state["state_in.0.att_xx"][:] = 1e6
    fp16 = ModelInfo(CONFIG, CONFIG.state_spec("float16"), "fp16", fingerprint=INFO.fingerprint)
    assert _load(_file(state), tmp_path).state["state_in.0.att_xx"][0, 0] == 1e6
    with pytest.raises(UserError, match="state_in.0.att_xx holds values beyond the range of float16"):
        _load(_file(state), tmp_path, info=fp16)


@pytest.mark.parametrize("dtype, shape, match", [
    (np.float16, (1, 8), "has dtype F16, expected F32"),
    (np.float64, (1, 8), "has dtype F64, expected F32"),
    (np.int64, (1, 8), "has dtype I64, expected F32"),
    (np.float32, (1, 9), r"has shape \[1, 9\], spec expects \[1, 8\]"),
    (np.float32, (8,), r"has shape \[8\], spec expects \[1, 8\]"),
])
def test_wrong_dtype_or_shape(tmp_path, dtype, shape, match):
    with pytest.raises(UserError, match=f"state input state_in.0.att_xx {match}"):
        _load(_file(_valid_state() | {"state_in.0.att_xx": np.zeros(shape, dtype)}), tmp_path)


def test_missing_and_extra_tensors(tmp_path):
    state = _valid_state()
    del state["state_in.1.ffn_m"]
    state["junk"] = np.zeros(3, np.float32)
    with pytest.raises(UserError, match=r"missing \[state_in.1.ffn_m\]; unexpected \[junk\]"):
        _load(_file(state), tmp_path)


@pytest.mark.parametrize("cut", [0, 7, 8, 100, len(VALID) - 1])
def test_truncated(tmp_path, cut):
    with pytest.raises(UserError, match="truncated|8-byte header length"):
        _load(VALID[:cut], tmp_path)


def test_trailing_bytes(tmp_path):
    with pytest.raises(UserError, match="padded with unknown bytes"):
        _load(VALID + b"\0" * 8, tmp_path)


@pytest.mark.parametrize("header, match", [
    (b'[1, 2]', "does not start with"),
    (b'{"a": 1,', "is not valid JSON"),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "declares a header of"),
    (b'{"a": ' + b"[" * 2_000 + b"]" * 2_000 + b"}", "is not valid JSON"),  # deeper than Python's recursion
    (b'{"\xff": 1}', "is not UTF-8"),
    (b'{"__metadata__": {"format": "rrwkv-state"}, "__metadata__": {}}', "appears more than once"),
    (b'{"__metadata__": {"format": 1}}', "must map strings to strings"),
])
def test_corrupted_header(tmp_path, header, match):
    with pytest.raises(UserError, match=match):
        _load(len(header).to_bytes(8, "little") + header, tmp_path)


def test_huge_declared_header_is_refused_before_reading(tmp_path):
    """A header length of 2^64-1, or merely beyond what the spec needs, is refused without reading a byte of it."""
    tracemalloc.start()
    try:
        for length in (2**64 - 1, 1 << 30):
            with pytest.raises(UserError, match=f"declares a header of {length} bytes; at most"):
                _load(_raw(VALID_HEADER, VALID_DATA, length=length), tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 10


@pytest.mark.parametrize("batch", [1, None])
def test_huge_shape_is_refused_before_allocating(tmp_path, batch):
    """A header claiming 2^40 rows of 8 floats for bytes the file does not hold."""
    header = json.loads(json.dumps(VALID_HEADER))
    entry = header["state_in.0.att_xx"]
    entry["shape"], entry["data_offsets"][1] = [2**40, 8], entry["data_offsets"][0] + 2**40 * 32
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="overlaps|truncated"):
            _load(_raw(header, VALID_DATA), tmp_path, batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 10


@pytest.mark.parametrize("shift, match", [(-4, "overlaps the tensor before it"), (4, "leaves a gap")])
def test_overlapping_or_gapped_tensors(tmp_path, shift, match):
    header = json.loads(json.dumps(VALID_HEADER))
    last = max(NAMES, key=lambda n: header[n]["data_offsets"][0])  # the last tensor in the data
    header[last]["data_offsets"] = [o + shift for o in header[last]["data_offsets"]]
    data = VALID_DATA + b"\0" * max(shift, 0)
    with pytest.raises(UserError, match=match):
        _load(_raw(header, data[:len(data) + min(shift, 0)]), tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "s.state"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is not a regular file"):
        load_state_file(fifo, INFO)


def test_save_refuses_bad_states(tmp_path):
    state = _valid_state()
    state["state_in.1.att_bb"][0, 0] = np.nan
    with pytest.raises(UserError, match="the state to save: state input state_in.1.att_bb holds NaN or Inf"):
        save_state_file(tmp_path / "s.state", INFO, state, [5], "test")
    with pytest.raises(UserError, match=r"state_in.pos holds \[5\], but the positions are \[4\]"):
        save_state_file(tmp_path / "s.state", INFO, _valid_state(), [4], "test")
    with pytest.raises(UserError, match="position -1 of batch row 0 is negative"):
        save_state_file(tmp_path / "s.state", INFO, _valid_state(), [-1], "test")
    assert os.listdir(tmp_path) == []


def _full_disk(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.state"
    save_state_file(path, INFO, _valid_state(), [5], "test")
    before = path.read_bytes()
    monkeypatch.setattr(files_module.os, "fsync", _full_disk)  # the data is written, then the disk fills
    with pytest.raises(UserError, match="cannot write state file .*s.state: No space left on device"):
        save_state_file(path, INFO, _valid_state(), [5], "test")
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["s.state"]  # no temporary file left behind


def test_cli_state_in_equals_state_out_survives_a_failed_write(make_fake_model, tmp_path, monkeypatch):
    """--state-in X --state-out X with a write failure: exit 2, one error line, X as it was."""
    out_dir = make_fake_model(family="rrwkv")
    (tmp_path / "states").mkdir()
    path = tmp_path / "states" / "s.state"
    assert CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "ab", "--state-out", str(path)]).exit_code == 0
    before = path.read_bytes()
    monkeypatch.setattr(files_module.os, "fsync", _full_disk)
    result = CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "c", "--max-new-tokens", "1",
                                       "--state-in", str(path), "--state-out", str(path)])
    assert result.exit_code == 2 and result.stderr.startswith("error: cannot write state file")
    assert path.read_bytes() == before and os.listdir(path.parent) == ["s.state"]


def _poison_logits(model_path: Path, row: int) -> None:
    model = onnx.load(model_path)
    (table,) = [t for t in model.graph.initializer if t.name == "table"]
    values = numpy_helper.to_array(table).copy()
    values[row] = np.nan
    table.CopyFrom(numpy_helper.from_array(values, "table"))
    onnx.save(model, model_path)


def test_cli_state_in_equals_state_out_survives_a_failed_run(make_fake_model, tmp_path):
    """A run that fails midway (NaN logits) saves nothing: X stays the state it resumed from."""
    out_dir = make_fake_model(family="rrwkv")
    path = tmp_path / "s.state"
    assert CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "a", "--max-new-tokens", "0",
                                     "--state-out", str(path)]).exit_code == 0
    before = path.read_bytes()
    _poison_logits(out_dir / "model.onnx", row=ord("d"))  # the logits after token "d"
    result = CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "bc", "--max-new-tokens", "5",
                                       "--state-in", str(path), "--state-out", str(path)])
    assert result.exit_code == 2 and "NaN or Inf logits" in result.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", ["npz", "foreign", "truncated", "no fingerprint"])
def test_cli_refuses_a_hostile_state_file(make_fake_model, tmp_path, kind):
    """The CLI reports a bad state file as one error line (exit 2), and writes no state."""
    out_dir = make_fake_model(family="rrwkv")
    path, state_out = tmp_path / "in.state", tmp_path / "out.state"
    if kind == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, **_valid_state())
        path.write_bytes(buffer.getvalue())
    else:
        donor = make_fake_model("other", family="rrwkv", next_token={1: 3}) if kind == "foreign" else out_dir
        assert CliRunner().invoke(main, ["run", str(donor), "--prompt", "a", "--state-out", str(path)]).exit_code == 0
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:-3])
        if kind == "no fingerprint":
            out_dir = make_fake_model("old", family="rrwkv", fingerprint=False)
    result = CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "a", "--state-in", str(path),
                                       "--state-out", str(state_out)])
    expected = {"npz": "is an .npz state file of an earlier rrwkv-trt", "foreign": "was saved from another model",
                "truncated": "the file is truncated", "no fingerprint": "has no rrwkv.fingerprint"}[kind]
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and expected in result.stderr and not state_out.exists()


def test_cli_refuses_to_save_without_a_fingerprint_before_decoding(make_fake_model, tmp_path):
    out_dir = make_fake_model(family="rrwkv", fingerprint=False)
    result = CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "a", "--state-out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "has no rrwkv.fingerprint" in result.stderr and result.stdout == ""


# --- property-based: mutations of a valid file end in a valid state or a UserError, in bounded memory ---

def _outcome(data: bytes, batch: int | None = 1) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        try:
            saved = _load(data, Path(tmp), batch)
        except UserError:
            saved = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < 8 * len(data) + (256 << 10), (peak, len(data))  # a few file sizes, whatever the header claims
    if saved is None:
        return
    validate_state(SPEC, saved.state, batch)
    for name, value in saved.state.items():
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), name
        else:
            assert 0 <= value.min() and value.max() < MAX_POS, name
    assert saved.state["state_in.pos"].tolist() == list(saved.positions)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([0, -1, 2**31, 2**63, 2**64, 10**30]) | st.floats()
    | st.text(max_size=8) | st.sampled_from(["F32", "I64", "F16", "BF16", "[5]", "[-1]", "1", "rrwkv-state"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value, containers included."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from _paths(inner, (*prefix, key))


HEADER_PATHS = [p for p in _paths(VALID_HEADER) if p]


def _mutated(header: dict, path: tuple, action: str, value: object) -> dict:
    """A copy of `header` with the element at `path` replaced, deleted, or given an extra sibling."""
    header = json.loads(json.dumps(header))
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    if action == "replace":
        parent[path[-1]] = value
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent["extra"] = value
    else:
        parent.append(value)
    return header


@pytest.mark.fuzz
@given(st.integers(0, len(VALID)))
def test_fuzz_truncated(cut):
    _outcome(VALID[:cut])


@pytest.mark.fuzz
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_flipped_bytes(flips):
    data = bytearray(VALID)
    for offset, value in flips:
        data[offset] = value
    _outcome(bytes(data))


@pytest.mark.fuzz
@given(st.sampled_from(HEADER_PATHS), st.sampled_from(["replace", "delete", "extra"]), json_values,
       st.sampled_from([1, None]))
def test_fuzz_header_mutated(path, action, value, batch):
    """Any header field (metadata, dtype, shape, offsets) replaced, deleted or joined by another, over the same
    data."""
    _outcome(_raw(_mutated(VALID_HEADER, path, action, value), VALID_DATA), batch)


@pytest.mark.fuzz
@given(st.sampled_from(NAMES), hnp.arrays(st.sampled_from([np.float32, np.float16, np.float64, np.int64, np.int32,
                                                           np.uint8, np.bool_]),
                                          hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9)),
       st.sampled_from([1, None]))
def test_fuzz_tensor_replaced(name, array, batch):
    """Another dtype, shape or values (NaN, Inf, any integer) in one tensor."""
    _outcome(_file(_valid_state() | {name: array}), batch)


@pytest.mark.fuzz
@given(st.text(max_size=40) | st.lists(st.integers(-2, 2**63) | st.just(5), max_size=3).map(json.dumps))
def test_fuzz_positions(positions):
    _outcome(_file(positions=positions), batch=None)


@pytest.mark.fuzz
@given(st.integers(1, 3), st.data())
def test_fuzz_batches(batch, data):
    """Valid files of any small batch, loaded with the right, a wrong or no expected batch."""
    expected = data.draw(st.sampled_from([batch, batch + 1, None]))
    file = _file(_valid_state(batch), batch)
    _outcome(file, expected)
    if expected != batch + 1:
        with tempfile.TemporaryDirectory() as tmp:
            assert _load(file, Path(tmp), expected).positions == (5,) * batch
