"""Hostile state files: load_state checks the zip directory and every .npy header against the spec before reading
any data, refuses non-finite values and out-of-range positions, and save_state never destroys the file it replaces.

The fuzz tests mutate a valid file and accept exactly two outcomes: a state that passes the spec's checks, or a
UserError."""
import errno
import io
import math
import os
import struct
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rrwkv_trt.cli.main import main
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.runtime import state as state_module
from rrwkv_trt.runtime.state import MAX_POS, allocate_state, load_state, save_state, validate_state

SPEC = RrwkvConfig(vocab_size=50, n_embd=8, n_layer=2, dim_att=8, dim_ffn=32).state_spec()
NAMES = SPEC.input_names()


def _valid_state(batch: int = 1) -> dict[str, np.ndarray]:
    state = allocate_state(SPEC, batch)
    state["state_in.0.att_aa"][:] = np.arange(8, dtype=np.float32)
    state["state_in.pos"][:] = 5
    return state


def _npz(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of raw members, written as np.savez would, but with any names, bytes and compression."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _members(state: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {f"{name}.npy": _npy(value) for name, value in state.items()}


VALID_MEMBERS = _members(_valid_state())
VALID = _npz(VALID_MEMBERS)


def _load(data: bytes, tmp_path: Path, batch: int | None = 1):
    path = tmp_path / "s.npz"
    path.write_bytes(data)
    return load_state(path, SPEC, batch=batch)


def _huge_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """An .npy file whose header claims `shape` but holds no data."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def test_valid_file_loads(tmp_path):
    loaded = _load(VALID, tmp_path)
    assert list(loaded) == NAMES
    for name, value in _valid_state().items():
        np.testing.assert_array_equal(loaded[name], value)


def test_npy_instead_of_npz(tmp_path):
    """Before: np.load returned an ndarray and `with` raised a TypeError traceback."""
    with pytest.raises(UserError, match=r"state file .*s.npz is not an .npz written by save_state"):
        _load(_npy(np.zeros(3, np.float32)), tmp_path)


def test_zip_bomb_refused_before_inflating(tmp_path):
    """Before: every member was inflated before validation, 1 MB on disk became 1 GiB in memory. Now the directory
    is checked first: neither an extra member nor a compressed one is ever inflated."""
    bomb = np.zeros(64 * 2**20, np.uint8).tobytes()  # 64 MiB of zeros deflate to 64 kB
    extra = _npz(VALID_MEMBERS | {"junk.npy": bomb}, zipfile.ZIP_DEFLATED)
    inflating = _npz(VALID_MEMBERS | {"state_in.0.att_aa.npy": bomb}, zipfile.ZIP_DEFLATED)
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match=r"does not match the model's state spec \(unexpected \[junk\]\)"):
            _load(extra, tmp_path)
        with pytest.raises(UserError, match="member state_in.0.att_xx.npy is compressed or encrypted"):
            _load(inflating, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


@pytest.mark.parametrize("batch", [1, None])
def test_huge_header_shape(tmp_path, batch):
    """Before: a header shape of 2^40 rows made numpy allocate it: a MemoryError traceback."""
    data = _npz(VALID_MEMBERS | {"state_in.0.att_xx.npy": _huge_header((2**40, 8))})
    expected = "has shape" if batch == 1 else "holds 128 bytes; its header"
    with pytest.raises(UserError, match=f"state_in.0.att_xx.*{expected}"):
        _load(data, tmp_path, batch)


def test_declared_size_must_match_header(tmp_path):
    data = _npz(VALID_MEMBERS | {"state_in.0.att_xx.npy": _npy(np.zeros((1, 8), np.float32)) + b"\0" * 100})
    with pytest.raises(UserError, match=r"member state_in.0.att_xx.npy holds 260 bytes; its header \[1, 8\] float32 "
                                        r"needs 160"):
        _load(data, tmp_path)


@pytest.mark.parametrize("name, value, match", [
    ("state_in.0.att_aa", np.nan, "state input state_in.0.att_aa holds NaN or Inf"),
    ("state_in.1.att_pp", -np.inf, "state input state_in.1.att_pp holds NaN or Inf"),
    ("state_in.pos", -1, r"state input state_in.pos holds -1..-1; positions must be in \[0, 281474976710656\)"),
    ("state_in.pos", MAX_POS, "positions must be in"),
    ("state_in.pos", 2**63 - 1, "positions must be in"),
])
def test_values_are_checked(tmp_path, name, value, match):
    """Before: NaN/Inf and any pos were accepted (and poisoned every later logit, or overflowed the position)."""
    state = _valid_state()
    state[name][...] = value
    with pytest.raises(UserError, match=match):
        _load(_npz(_members(state)), tmp_path)


def test_largest_position_loads(tmp_path):
    state = _valid_state()
    state["state_in.pos"][:] = MAX_POS - 1
    assert _load(_npz(_members(state)), tmp_path)["state_in.pos"].tolist() == [MAX_POS - 1]


def test_duplicate_member(tmp_path):
    buf = io.BytesIO(VALID)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("state_in.pos.npy", _npy(np.array([7], np.int64)))
    with pytest.raises(UserError, match=r"members \[state_in.pos\] appear more than once"):
        _load(buf.getvalue(), tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "s.npz"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is not a regular file"):
        load_state(fifo, SPEC)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    """Before: save_state opened the file for writing first, so a full disk destroyed the state it replaced."""
    path = tmp_path / "s.npz"
    save_state(path, SPEC, _valid_state())
    before = path.read_bytes()

    def full_disk(f, **arrays):
        f.write(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(state_module.np, "savez", full_disk)
    with pytest.raises(UserError, match="cannot write state file .*s.npz: No space left on device"):
        save_state(path, SPEC, _valid_state())
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["s.npz"]  # no temporary file left behind


def test_cli_state_in_equals_state_out_survives_a_failed_write(make_fake_model, tmp_path, monkeypatch):
    """--state-in X --state-out X with a write failure: exit 2, one error line, X as it was."""
    out_dir = make_fake_model(family="rrwkv")
    (tmp_path / "states").mkdir()
    path = tmp_path / "states" / "s.npz"
    assert CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "ab", "--state-out", str(path)]).exit_code == 0
    before = path.read_bytes()

    def full_disk(f, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(state_module.np, "savez", full_disk)
    result = CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "c", "--max-new-tokens", "1",
                                       "--state-in", str(path), "--state-out", str(path)])
    assert result.exit_code == 2 and result.stderr.startswith("error: cannot write state file")
    assert path.read_bytes() == before and os.listdir(path.parent) == ["s.npz"]


def test_cli_refuses_a_hostile_state_file(make_fake_model, tmp_path):
    """The CLI reports a hostile state file as one error line (exit 2), and writes no state."""
    out_dir = make_fake_model(family="rrwkv")
    path = tmp_path / "bad.npz"
    path.write_bytes(_npy(np.zeros(3)))
    state_out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["run", str(out_dir), "--prompt", "a", "--state-in", str(path),
                                       "--state-out", str(state_out)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "is not an .npz written by save_state" in result.stderr and not state_out.exists()


# --- property-based: mutations of a valid file end in a valid state or a UserError ---

def _outcome(data: bytes, batch: int | None = 1) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            state = _load(data, Path(tmp), batch)
        except UserError:
            return
    validate_state(SPEC, state, batch)
    for name, value in state.items():
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), name
        else:
            assert 0 <= value.min() and value.max() < MAX_POS, name


dtypes = st.sampled_from([np.float32, np.float16, np.float64, np.int64, np.int32, np.uint8, np.bool_, ">f4"])
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9))
# zipfile cuts a name at its first NUL, and cannot write an empty one or a lone surrogate
member_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12) | st.sampled_from(
    [f"{n}.npy" for n in NAMES] + NAMES)
hostile_shapes = st.lists(st.integers(-1, 2**62) | st.sampled_from([0, 1, 2, 8]), min_size=0, max_size=3)


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
@given(st.sampled_from(NAMES), arrays, st.sampled_from([1, None]))
def test_fuzz_member_replaced(name, array, batch):
    """Another dtype, shape or values (NaN, Inf, any integer) in one member."""
    _outcome(_npz(VALID_MEMBERS | {f"{name}.npy": _npy(array)}), batch)


@pytest.mark.fuzz
@given(st.sampled_from(NAMES), hostile_shapes, st.sampled_from(["<f4", "<i8", "|O", "<U3", "V4"]),
       st.sampled_from([1, None]))
def test_fuzz_header_lies(name, shape, descr, batch):
    """A header claiming any shape and dtype over the member's real bytes (or none)."""
    data = VALID_MEMBERS[f"{name}.npy"]
    _outcome(_npz(VALID_MEMBERS | {f"{name}.npy": _huge_header(tuple(shape), descr) + data[128:]}), batch)


@pytest.mark.fuzz
@given(st.sets(st.sampled_from(NAMES), max_size=3), st.dictionaries(member_names, st.binary(max_size=64), max_size=3))
def test_fuzz_members_removed_or_added(removed, added):
    members = {k: v for k, v in VALID_MEMBERS.items() if k.removesuffix(".npy") not in removed} | added
    _outcome(_npz(members))


@pytest.mark.fuzz
@given(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]),
       st.integers(0, 4 * 2**20), st.sampled_from([None, *NAMES]))
def test_fuzz_compressed_and_bombs(compression, bomb_size, bomb_name):
    """Compressed files, with or without a member that inflates to megabytes of zeros."""
    members = dict(VALID_MEMBERS)
    if bomb_name is not None:
        members[f"{bomb_name}.npy"] = bytes(bomb_size)
    _outcome(_npz(members, compression), batch=None)


@pytest.mark.fuzz
@given(st.integers(1, 3), st.data())
def test_fuzz_batches(batch, data):
    """Valid files of any small batch, loaded with the right, a wrong or no expected batch."""
    expected = data.draw(st.sampled_from([batch, batch + 1, None]))
    file = _npz(_members(_valid_state(batch)))
    _outcome(file, expected)
    if expected != batch + 1:
        with tempfile.TemporaryDirectory() as tmp:
            assert math.prod(_load(file, Path(tmp), expected)["state_in.pos"].shape) == batch
