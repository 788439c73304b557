"""∞-former's config (core/families/inftyformer.py): validation, registry, round trips, state slots per option,
the call limit and the decode-step matmuls."""
import pytest

from rrwkv_trt.core.config import config_classes, config_from_dict, config_from_json, config_to_json
from rrwkv_trt.core.errors import ConfigError
from rrwkv_trt.core.families.inftyformer import InftyformerConfig
from rrwkv_trt.core.metadata import ModelInfo, from_metadata, to_metadata

SIZES = dict(vocab_size=50, n_layer=3, d_model=64, n_head=4, d_ff=128, window=32)


def test_found_without_a_list():
    assert config_classes()["inftyformer"] is InftyformerConfig


def test_defaults_are_the_sorting_setup():
    cfg = InftyformerConfig(**SIZES)
    assert (cfg.tau, cfg.ridge, cfg.sigmas, cfg.sigma2_min) == (0.75, 1.0, (0.01, 0.05), 1e-6)
    assert (cfg.use_ltm, cfg.sticky, cfg.hist_bins, cfg.code_quirks, cfg.head_dim) == (1, 0, 128, 1, 16)


def test_round_trips_through_json_and_metadata():
    cfg = InftyformerConfig(**SIZES, segment_len=8, num_basis=12, num_samples=10, tau_ppm=500_000,
                            ridge_ppm=500_000, sigma_narrow_ppm=5_000, sigma_wide_ppm=10_000, sigma2_min_ppm=100,
                            sticky=1, hist_bins=64, code_quirks=0)
    assert config_from_dict(cfg.to_dict()) == cfg and config_from_json(config_to_json(cfg)) == cfg
    info = ModelInfo(cfg, cfg.state_spec(), "fp32", ())
    back = from_metadata(to_metadata(info))
    assert back.config == cfg and back.state == cfg.state_spec()


@pytest.mark.parametrize("change, match", [
    ({"d_model": 0}, "d_model must be an int >= 1"),
    ({"window": 2.5}, "window must be an int >= 1"),
    ({"n_head": 5}, "d_model must be a multiple of n_head"),
    ({"tau_ppm": 1_000_001}, "tau_ppm must be <= 1000000"),
    ({"ridge_ppm": 0}, "ridge_ppm must be an int >= 1"),
    ({"num_basis": 1}, "num_basis must be >= 2"),
    ({"sticky": 2}, "sticky must be 0 or 1"),
    ({"use_ltm": True}, "use_ltm must be 0 or 1"),
    ({"hist_bins": 0}, "hist_bins must be an int >= 1"),
    ({"segment_len": 1 << 40}, "segment_len must be <= 16384"),
    ({"window": (1 << 20) + 1}, "window must be <= 1048576"),
])
def test_bad_fields_are_named(change, match):
    with pytest.raises(ConfigError, match=match):
        InftyformerConfig(**(SIZES | change))


def slots(cfg):
    return [(t.key, t.slot.dtype, cfg.state_spec().concrete_shape(t.slot, 2)) for t in cfg.state_spec().tensors()]


def test_state_slots_follow_the_options():
    ltm = InftyformerConfig(**(SIZES | {"n_layer": 1}), segment_len=8, num_basis=12)
    assert slots(ltm) == [("0.stm_k", "float32", (2, 4, 32, 16)), ("0.stm_v", "float32", (2, 4, 32, 16)),
                          ("0.stm_x", "float32", (2, 32, 64)), ("0.ltm_b", "float32", (2, 12, 64)),
                          ("0.pending", "float32", (2, 8, 64)), ("pos", "int64", (2,))]
    sticky = InftyformerConfig(**(SIZES | {"n_layer": 1}), sticky=1, hist_bins=16)
    assert ("0.hist", "float32", (2, 16)) in slots(sticky)
    plain = InftyformerConfig(**(SIZES | {"n_layer": 1}), use_ltm=0, sticky=1)
    assert [s[0] for s in slots(plain)] == ["0.stm_k", "0.stm_v", "pos"]
    half = {t.slot.name: t.slot.dtype for t in ltm.state_spec("float16").tensors()}
    assert half == {"stm_k": "float16", "stm_v": "float16", "stm_x": "float16", "ltm_b": "float32",
                    "pending": "float32", "pos": "int64"}


def test_call_limit_and_matmuls():
    ltm, plain = InftyformerConfig(**SIZES, segment_len=8), InftyformerConfig(**SIZES, use_ltm=0)
    assert (ltm.max_call_tokens, plain.max_call_tokens) == (8, 32)
    assert InftyformerConfig(**SIZES, segment_len=64).max_call_tokens == 32  # the window
    assert len(ltm.step_matmul_shapes()) == 3 * 9 + 1 and len(plain.step_matmul_shapes()) == 3 * 6 + 1
    assert ltm.step_matmul_shapes()[-1] == (50, 64) and (128, 64) in plain.step_matmul_shapes()
