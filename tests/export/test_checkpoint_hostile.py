"""Hostile checkpoints (.safetensors, .pth, config.json) end in a UserError naming the file, never another exception,
and never in memory or work beyond what the file holds."""
from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from rrwkv_trt.cli.main import main
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.export.checkpoint import Checkpoint, load_checkpoint
from rrwkv_trt.export.families.rwkv4 import BlinkDLCheckpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict

CFG = Rwkv4Config(vocab_size=8, n_embd=8, n_layer=1, dim_att=8, dim_ffn=16)
RR_CFG = RrwkvConfig(vocab_size=8, n_embd=8, n_layer=1, dim_att=8, dim_ffn=16, medium_interval=2)
SD = random_blinkdl_state_dict(CFG, seed=0)
RR_SD = random_blinkdl_state_dict(RR_CFG, seed=0)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


def _refused(path: Path, *expected: str) -> str:
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert all(e in message for e in expected) and "\n" not in message, message
    return message


def test_garbled_safetensors_is_a_user_error(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file(SD, str(good))
    content = good.read_bytes()
    cases = {
        "short.safetensors": content[:5],
        "huge_header.safetensors": (10**12).to_bytes(8, "little") + content[8:],
        "bad_json.safetensors": content[:8] + b"!" + content[9:],
        "truncated.safetensors": content[:-10],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        _refused(tmp_path / name, "cannot read checkpoint", name)


def test_cli_export_of_a_garbled_safetensors_exits_2(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json at all}")
    result = CliRunner().invoke(main, ["export", str(tmp_path / "bad.safetensors"), "-o", str(tmp_path / "out")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and lines[-1].startswith("error: cannot read checkpoint"), result.output
    assert not (tmp_path / "out").exists()


def _save(tmp_path: Path, sd: dict, name: str = "m.pth") -> Path:
    path = tmp_path / name
    torch.save(sd, path) if name.endswith(".pth") else save_file(sd, str(path))
    return path


@pytest.mark.parametrize("key", ["blocks.x.att.key.weight", "blocks.\u00b2.att.key.weight", "blocks..ln1.weight"])
def test_block_keys_without_a_layer_number(tmp_path, key):
    _refused(_save(tmp_path, SD | {key: torch.zeros(8)}), "has no layer number after 'blocks.'")


def test_a_far_layer_index_is_refused_before_the_expected_keys_are_built(tmp_path, monkeypatch):
    built = []
    real = BlinkDLCheckpoint.expected_shapes
    monkeypatch.setattr(BlinkDLCheckpoint, "expected_shapes", lambda self, cfg: built.append(cfg) or real(self, cfg))
    _refused(_save(tmp_path, SD | {"blocks.99999.ln1.weight": torch.zeros(8)}),
             "name 2 layers, the highest 99999, but layer 1 has no keys")
    assert not built


def test_non_utf8_or_mistyped_config_json(tmp_path):
    _save(tmp_path, RR_SD, "model.safetensors")
    config = tmp_path / "config.json"
    for content, expected in [
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"[" * 100_000, "nests JSON arrays or objects too deeply"),
        (b"[]", "must hold a JSON object"),
        (json.dumps({"family": ["rrwkv"]}).encode(), "\"family\" must be a family id string"),
        (json.dumps({"medium_decays": "2"}).encode(), "'medium_decays' must be an integer, got '2'"),
        (json.dumps({"medium_decays": 2.5}).encode(), "'medium_decays' must be an integer, got 2.5"),
        (json.dumps({"medium_interval": True}).encode(), "'medium_interval' must be an integer, got True"),
        (b" " * (1 << 20) + b"{}", "is larger than 1048576 bytes"),
    ]:
        config.write_bytes(content)
        _refused(tmp_path, str(config), expected)
    config.write_text(json.dumps({"medium_decays": 1}))
    assert load_checkpoint(tmp_path).config.medium_decays == 1


def test_zero_stride_and_shared_storage_tensors_are_refused(tmp_path):
    broadcast = torch.zeros(1).expand(8, 8)  # 64 elements viewed, 4 bytes stored
    _refused(_save(tmp_path, SD | {"emb.weight": broadcast}), "tensor emb.weight has shape [8, 8] and strides [0, 0]")
    shared = SD["blocks.0.att.key.weight"]
    _refused(_save(tmp_path, SD | {"blocks.0.att.value.weight": shared}, "shared.pth"), "share their storage")
    # views of disjoint parts of one storage are fine
    both = torch.cat([SD["ln_out.weight"], SD["ln_out.bias"]])
    assert isinstance(load_checkpoint(_save(tmp_path, SD | {"ln_out.weight": both[:8], "ln_out.bias": both[8:]},
                                            "views.pth")), Checkpoint)


def test_compressed_or_legacy_pth_is_refused(tmp_path):
    good = _save(tmp_path, SD)
    deflated = tmp_path / "deflated.pth"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    _refused(deflated, "is compressed, which torch.save never does")
    legacy = tmp_path / "legacy.pth"
    torch.save(SD, legacy, _use_new_zipfile_serialization=False)
    _refused(legacy, "not a torch.save zip archive")


# Property-based: mutations of a valid tiny checkpoint end in a correct checkpoint or a UserError.

def _loads_or_refuses(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
        try:
            ckpt = load_checkpoint(tmp)
        except UserError:
            return
        assert all(t.dtype == torch.float32 for t in ckpt.state_dict.values())


def _file_bytes(sd: dict, name: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return _save(Path(tmp), sd, name).read_bytes()


VALID = {name: _file_bytes(SD, name) for name in ("model.pth", "model.safetensors")}


@pytest.mark.fuzz
@given(name=st.sampled_from(sorted(VALID)), data=st.data())
def test_fuzz_byte_mutations(name, data):
    content = VALID[name]
    cut = data.draw(st.integers(0, len(content)))
    if data.draw(st.booleans()):
        content = content[:cut]
    else:
        content = content[:cut] + bytes([data.draw(st.integers(0, 255))]) + content[cut + 1:]
    _loads_or_refuses({name: content})


tensors = st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
                    st.lists(st.integers(0, 9), max_size=3),
                    st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool]))
key_names = st.sampled_from(sorted(RR_SD)) | st.builds("blocks.{}.{}".format,
                                                       st.integers(0, 10**6) | st.text(max_size=3),
                                                       st.sampled_from(["ln1.weight", "att.key.weight", "x"]))


@pytest.mark.fuzz
@given(rrwkv=st.booleans(), removed=st.sets(st.sampled_from(sorted(RR_SD)), max_size=2),
       changed=st.dictionaries(key_names, tensors, max_size=3), name=st.sampled_from(sorted(VALID)))
def test_fuzz_keys_and_tensors(rrwkv, removed, changed, name):
    sd = {k: v for k, v in (RR_SD if rrwkv else SD).items() if k not in removed} | changed
    _loads_or_refuses({name: _file_bytes(sd, name)})


@pytest.mark.fuzz
@given(fields=st.dictionaries(st.sampled_from(["family", "medium_interval", "medium_decays", "n_layer"])
                              | st.text(max_size=4), json_values, max_size=3))
def test_fuzz_config_json(fields):
    config = RR_CFG.to_dict() | fields
    _loads_or_refuses({"model.safetensors": _file_bytes(RR_SD, "model.safetensors"),
                       "config.json": json.dumps(config).encode()})
