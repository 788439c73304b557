"""fla HGRN2 checkpoints (export/families/hgrn2.py): Hugging Face folders with model.safetensors or pytorch_model.bin,
detection, config.json's options, tied embeddings, and refusals naming the file, the key and what is supported."""
import json
import re

import pytest
import torch
from hgrn2_fixtures import fla_config, fla_shapes, random_fla_state_dict, write_fla_folder

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.hgrn2 import QUERY_SCALE_FLA, QUERY_SCALE_ONE, Hgrn2Config
from rrwkv_trt.core.paths import SHIPPED_MODEL
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model, family_of
from rrwkv_trt.export.models.hgrn2 import layer_lower_bounds


def folder_of(tmp_path, cfg=None, raw=None, fmt="safetensors", **overrides):
    cfg = fla_config(**overrides) if cfg is None else cfg
    raw = random_fla_state_dict(cfg, seed=0) if raw is None else raw
    return write_fla_folder(tmp_path / "ckpt", cfg, raw, fmt, SHIPPED_MODEL / "tokenizer.json")


def refused(path, match, family=None):
    with pytest.raises(UserError, match=match):
        load_checkpoint(path, family)


def test_folder_is_detected_and_converted(tmp_path):
    cfg = fla_config()
    raw = random_fla_state_dict(cfg, seed=0)
    folder = folder_of(tmp_path, cfg, raw)
    ckpt = load_checkpoint(folder)  # no --family, and fla's config.json names none: detected from the keys
    assert ckpt.config == Hgrn2Config(vocab_size=64, n_layer=2, hidden_size=64, num_heads=4, head_k_dim=16,
                                      head_v_dim=16, intermediate_size=96)
    assert ckpt.source == folder / "model.safetensors" and ckpt.tokenizer == folder / "tokenizer.json"
    assert any("lower_bound" in t for t in ckpt.transforms)
    sd = ckpt.state_dict
    assert torch.equal(sd["layers.1.attn.q_proj.weight"], raw["model.layers.1.attn.q_proj.weight"])
    assert torch.equal(sd["layers.0.attn.g_norm.gain"], raw["model.layers.0.attn.g_norm.weight"])
    assert torch.equal(sd["norm.gain"], raw["model.norm.weight"])
    assert torch.equal(sd["lm_head.weight"], raw["lm_head.weight"])
    lb = layer_lower_bounds(raw["model.lower_bounds"])
    assert torch.equal(sd["layers.1.attn.lower_bound"], lb[1].reshape(4, 16))
    assert all(t.dtype == torch.float32 for t in sd.values())
    build_model(ckpt.config, sd)  # load_state_dict(strict=True): every model parameter, nothing else


def test_bin_folder_reads_as_the_safetensors_one(tmp_path):
    cfg = fla_config()
    raw = random_fla_state_dict(cfg, seed=1)
    st = load_checkpoint(write_fla_folder(tmp_path / "st", cfg, raw))
    binary = load_checkpoint(write_fla_folder(tmp_path / "bin", cfg, raw, fmt="bin"))
    assert binary.source.name == "pytorch_model.bin" and binary.config == st.config
    assert binary.state_dict.keys() == st.state_dict.keys()
    assert all(torch.equal(binary.state_dict[k], st.state_dict[k]) for k in st.state_dict)


def test_bin_is_checked_as_a_torch_save_archive(tmp_path):
    folder = folder_of(tmp_path, fmt="bin")
    (folder / "pytorch_model.bin").write_bytes(b"not a zip archive")
    refused(folder, "not a torch.save zip archive")


def test_two_bins_are_refused_by_name(tmp_path):
    folder = folder_of(tmp_path, fmt="bin")
    (folder / "training_args.bin").write_bytes(b"")
    refused(folder, re.escape("expected exactly one .safetensors, .pth or .bin checkpoint in the folder, found "
                              "['pytorch_model.bin', 'training_args.bin']"))


def test_tied_embeddings_copy_the_table_into_the_head(tmp_path):
    cfg = fla_config(tie_word_embeddings=True)
    raw = random_fla_state_dict(cfg, seed=2)
    assert "lm_head.weight" not in raw  # save_pretrained drops the tied head
    ckpt = load_checkpoint(folder_of(tmp_path, cfg, raw))
    assert ckpt.config.tie_word_embeddings == 1
    assert torch.equal(ckpt.state_dict["lm_head.weight"], raw["model.embeddings.weight"])
    assert ckpt.state_dict["lm_head.weight"].data_ptr() != ckpt.state_dict["embeddings.weight"].data_ptr()


def test_options_from_config_json(tmp_path):
    cfg = fla_config(intermediate_size=None, hidden_ratio=4, norm_eps=1e-5, use_lower_bound=False,
                     query_scale="one", num_heads=2)
    raw = random_fla_state_dict(cfg | {"expand_ratio": 32}, 3)
    cfg["expand_ratio"] = None  # fla derives it from num_heads: 2 heads of K = 32
    ckpt = load_checkpoint(folder_of(tmp_path, cfg, raw))
    c = ckpt.config
    assert (c.num_heads, c.head_k_dim, c.head_v_dim) == (2, 32, 32)
    assert c.intermediate_size == 256  # fla: 256 * ceil(int(64 * 4 * 2/3) / 256)
    assert c.norm_eps == 1e-5 and c.use_lower_bound == 0 and c.query_scale == QUERY_SCALE_ONE
    assert not any(t.any() for k, t in ckpt.state_dict.items() if k.endswith("lower_bound"))


def test_expand_ratio_wins_over_num_heads_as_in_fla(tmp_path):
    """fla's HGRN2Attention recomputes num_heads = hidden_size // expand_ratio whenever expand_ratio is set."""
    cfg = fla_config(num_heads=7)
    assert load_checkpoint(folder_of(tmp_path, cfg)).config.num_heads == 4


def test_query_scale_defaults_to_fla(tmp_path):
    assert load_checkpoint(folder_of(tmp_path)).config.query_scale == QUERY_SCALE_FLA


@pytest.mark.parametrize("key, value, match", [
    ("use_short_conv", True, "'use_short_conv' is True; rrwkv-trt supports use_short_conv false only"),
    ("attn", {"layers": [1], "num_heads": 4}, "'attn' is .*; rrwkv-trt supports attn null only"),
    ("hidden_act", "gelu", "'hidden_act' is 'gelu'; rrwkv-trt supports hidden_act \"swish\""),
    ("attnres_block_size", 2, "'attnres_block_size' is 2; rrwkv-trt supports attnres_block_size null only"),
    ("elementwise_affine", False, "'elementwise_affine' is False; rrwkv-trt supports elementwise_affine true"),
    ("elementwise_affine", None, "'elementwise_affine' is None; rrwkv-trt supports elementwise_affine true"),
    ("model_type", "gla", "'model_type' is 'gla'; rrwkv-trt supports fla HGRN2 checkpoints"),
    ("query_scale", 1.0, r"'query_scale' is 1.0; expected one of \['fla', 'one'\]"),
    ("hidden_size", "64", "'hidden_size' must be a positive integer, got '64'"),
    ("use_lower_bound", 1, "'use_lower_bound' must be true or false, got 1"),
    ("norm_eps", 1.5e-13, "'norm_eps' is 1.5e-13; rrwkv-trt supports an eps that is a multiple of 1e-12"),
    ("norm_eps", -1e-6, "'norm_eps' must be a positive number"),
    ("expand_ratio", 128, "'expand_ratio' gives 0 heads"),
])
def test_unsupported_options_are_refused_by_name(tmp_path, key, value, match):
    folder = folder_of(tmp_path)
    cfg = json.loads((folder / "config.json").read_text()) | {key: value}
    (folder / "config.json").write_text(json.dumps(cfg))
    refused(folder, re.escape(str(folder / "config.json")) + ": " + match)


def test_silu_is_swish(tmp_path):
    assert load_checkpoint(folder_of(tmp_path, hidden_act="silu")).config.hidden_size == 64


def test_config_json_is_required(tmp_path):
    folder = folder_of(tmp_path)
    (folder / "config.json").unlink()
    refused(folder, "an fla HGRN2 checkpoint needs its config.json beside it")


@pytest.mark.parametrize("overrides, match", [
    ({"hidden_size": 32, "expand_ratio": 8}, r"says vocab_size=64, hidden_size=32, but .* has "
                                             r"model.embeddings.weight of shape \[64, 64\]; expected \[64, 32\]"),
    ({"vocab_size": 65}, r"says vocab_size=65, hidden_size=64, but .*model.embeddings.weight of shape \[64, 64\]"),
    ({"num_hidden_layers": 3}, r"says num_hidden_layers=3, but .* has keys for 2 layers \(model.layers.0..1\)"),
    ({"expand_ratio": 24}, r"gives 2 heads of head_k_dim 24 \(expand_ratio\), 48 rows, but .* has "
                           r"model.layers.0.attn.f_proj.weight with 64 rows"),
    ({"intermediate_size": 128}, r"gives intermediate_size=128 .* but .* has model.layers.0.mlp.gate_proj.weight "
                                 r"with 96 rows"),
    ({"use_lower_bound": False}, r"says use_lower_bound=false, but .* has model.lower_bounds"),
    ({"tie_word_embeddings": True}, r"says tie_word_embeddings=true, but .* has lm_head.weight"),
])
def test_config_json_is_cross_checked_against_the_tensors(tmp_path, overrides, match):
    raw = random_fla_state_dict(fla_config(), seed=4)  # the tensors of the default config
    refused(folder_of(tmp_path, fla_config(**overrides), raw), match)


def test_missing_lower_bounds_and_head_are_named(tmp_path):
    raw = random_fla_state_dict(fla_config(), seed=5)
    refused(folder_of(tmp_path, raw={k: v for k, v in raw.items() if k != "model.lower_bounds"}),
            r"says use_lower_bound=true, but .* has no model.lower_bounds")
    refused(folder_of(tmp_path, raw={k: v for k, v in raw.items() if k != "lm_head.weight"}),
            r"says tie_word_embeddings=false, but .* has no lm_head.weight")


def test_missing_extra_and_misshaped_keys_are_named(tmp_path):
    raw = random_fla_state_dict(fla_config(), seed=6)
    refused(folder_of(tmp_path, raw={k: v for k, v in raw.items() if k != "model.layers.1.attn.g_norm.weight"}),
            re.escape("missing 1 key(s), e.g. ['model.layers.1.attn.g_norm.weight']"))
    refused(folder_of(tmp_path, raw=raw | {"model.layers.0.attn.q_conv1d.weight": torch.zeros(64, 1, 4)}),
            re.escape("1 unexpected key(s), e.g. ['model.layers.0.attn.q_conv1d.weight']"))
    refused(folder_of(tmp_path, raw=raw | {"model.layers.1.attn.o_proj.weight": torch.zeros(64, 63)}),
            re.escape("tensor model.layers.1.attn.o_proj.weight has shape [64, 63], expected [64, 64]"))
    refused(folder_of(tmp_path, raw=raw | {"model.layers.x.attn.o_proj.weight": torch.zeros(1)}),
            "key 'model.layers.x...' has no layer number")
    gap = {k.replace("layers.1.", "layers.2."): v for k, v in raw.items()}  # layers 0 and 2
    refused(folder_of(tmp_path, raw=gap), "the model.layers.<layer> keys name 2 layers, the highest 2, but "
            "layer 1 has no keys")


def test_expected_shapes_are_fla_s_keys():
    cfg = fla_config(num_hidden_layers=3, intermediate_size=None)
    ckpt_cfg = Hgrn2Config(vocab_size=64, n_layer=3, hidden_size=64, num_heads=4, head_k_dim=16, head_v_dim=16,
                           intermediate_size=256)
    assert family_of("hgrn2").checkpoint.expected_shapes(ckpt_cfg) == fla_shapes(cfg)


def test_explicit_family_and_other_families_stay_apart(tmp_path):
    folder = folder_of(tmp_path)
    assert load_checkpoint(folder, "hgrn2").config.family == "hgrn2"
    refused(folder, "missing or non-2-D tensor 'emb.weight'", family="rwkv4")
