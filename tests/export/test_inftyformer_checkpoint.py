"""∞-former checkpoint folders (export/families/inftyformer.py): round trip, each bad config.json or tensor set
named in one UserError, and config.json fuzzed."""
import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from inftyformer_fixtures import small_config, write_checkpoint
from safetensors.torch import load_file, save_file

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("inftyformer") / "ckpt", seed=2, sticky=1)


def test_round_trip(folder):
    ckpt = load_checkpoint(folder)
    assert ckpt.config == small_config(sticky=1)
    model = build_model(ckpt.config, ckpt.state_dict)
    assert set(ckpt.state_dict) == set(model.state_dict())
    assert all(t.dtype == torch.float32 for t in ckpt.state_dict.values())


def copy_with(folder, tmp_path, config=None, tensors=None):
    out = tmp_path / "edited"
    out.mkdir()
    meta = json.loads((folder / "config.json").read_text())
    if config is not None:
        (out / "config.json").write_text(json.dumps(config(meta)))
    raw = load_file(str(folder / "model.safetensors"))
    save_file(tensors(raw) if tensors else raw, str(out / "model.safetensors"))
    return out


def test_config_json_is_required(folder, tmp_path):
    with pytest.raises(UserError, match=r"config.json: missing or empty; an inftyformer checkpoint"):
        load_checkpoint(copy_with(folder, tmp_path), family="inftyformer")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m | {"window_size": 3}, r"config.json: inftyformer config has unknown fields \['window_size'\]"),
    (lambda m: {k: v for k, v in m.items() if k != "window"}, r"missing fields \['window'\]"),
    (lambda m: m | {"n_layer": 3}, r"n_layer is 3 but model.safetensors holds 2 layers"),
    (lambda m: m | {"sticky": 5}, r"sticky must be 0 or 1"),
    (lambda m: m | {"d_model": 16}, r"shape"),
    (lambda m: m | {"use_ltm": 0}, r"blocks.0.ltm"),
])
def test_bad_config_json_is_named(folder, tmp_path, edit, match):
    with pytest.raises(UserError, match=match):
        load_checkpoint(copy_with(folder, tmp_path, config=edit))


@pytest.mark.parametrize("edit, match", [
    (lambda raw: {k: v for k, v in raw.items() if k != "blocks.1.ltm.w_mu"}, "blocks.1.ltm.w_mu"),
    (lambda raw: raw | {"blocks.0.stm.q.weight": torch.zeros(32, 31)}, "blocks.0.stm.q.weight"),
    (lambda raw: raw | {"blocks.x.stm.q.weight": torch.zeros(32, 32)}, "no layer number"),
])
def test_bad_tensors_are_named(folder, tmp_path, edit, match):
    with pytest.raises(UserError, match=match):
        load_checkpoint(copy_with(folder, tmp_path, config=lambda m: m, tensors=edit))


FIELD_VALUES = st.one_of(st.integers(-3, 1 << 40), st.booleans(), st.none(), st.floats(), st.text(max_size=5),
                         st.lists(st.integers(), max_size=2))


@pytest.mark.fuzz
@given(edits=st.dictionaries(st.sampled_from(sorted(small_config().to_dict()) + ["extra"]), FIELD_VALUES,
                             max_size=3))
def test_fuzzed_config_json_loads_or_is_refused(folder, tmp_path_factory, edits):
    out = copy_with(folder, tmp_path_factory.mktemp("fuzz"), config=lambda m: m | edits)
    try:
        ckpt = load_checkpoint(out)
    except UserError:
        return
    build_model(ckpt.config, ckpt.state_dict)
