"""HGRN2's config (core/families/hgrn2.py): validation, registry, round trips, state spec, decode-step matmuls."""
import pytest

from rrwkv_trt.core.config import config_classes, config_from_dict, config_from_json, config_to_json
from rrwkv_trt.core.errors import ConfigError
from rrwkv_trt.core.families.hgrn2 import QUERY_SCALE_FLA, QUERY_SCALE_ONE, Hgrn2Config
from rrwkv_trt.core.metadata import ModelInfo, from_metadata, to_metadata
from rrwkv_trt.core.state import StateSpec

SIZES = dict(vocab_size=50, n_layer=3, hidden_size=64, num_heads=4, head_k_dim=16, head_v_dim=16,
             intermediate_size=96)


def test_found_without_a_list():
    assert config_classes()["hgrn2"] is Hgrn2Config


def test_defaults_are_fla_s():
    cfg = Hgrn2Config(**SIZES)
    assert (cfg.query_scale, cfg.use_lower_bound, cfg.tie_word_embeddings) == (QUERY_SCALE_FLA, 1, 0)
    assert cfg.norm_eps == 1e-6 and cfg.scale == 0.25  # 16^-0.5
    assert Hgrn2Config(**SIZES, query_scale=QUERY_SCALE_ONE).scale == 1.0
    assert Hgrn2Config(**SIZES, norm_eps_pico=10_000_000).norm_eps == 1e-5


def test_round_trips_through_json_and_metadata():
    cfg = Hgrn2Config(**SIZES, query_scale=QUERY_SCALE_ONE, use_lower_bound=0, norm_eps_pico=3_000_000,
                      tie_word_embeddings=1)
    assert config_from_dict(cfg.to_dict()) == cfg
    assert config_from_json(config_to_json(cfg)) == cfg
    info = ModelInfo(cfg, cfg.state_spec(), "fp32", ("cast to float32",))
    back = from_metadata(to_metadata(info))
    assert back.config == cfg and back.state == cfg.state_spec()


@pytest.mark.parametrize("change, match", [
    ({"hidden_size": 0}, "hidden_size must be an int >= 1"),
    ({"head_k_dim": 1.5}, "head_k_dim must be an int >= 1"),
    ({"norm_eps_pico": 0}, "norm_eps_pico must be an int >= 1"),
    ({"norm_eps_pico": 10**12}, "norm_eps_pico must be <="),
    ({"query_scale": 2}, r"query_scale must be one of \[0, 1\]"),
    ({"query_scale": True}, r"query_scale must be one of \[0, 1\]"),
    ({"use_lower_bound": 2}, r"use_lower_bound must be one of \[0, 1\]"),
    ({"tie_word_embeddings": False}, r"tie_word_embeddings must be one of \[0, 1\]"),
    ({"head_v_dim": 8}, r"num_heads \* head_v_dim must equal hidden_size"),
    ({"head_k_dim": 8}, r"with use_lower_bound, num_heads \* head_k_dim must equal hidden_size"),
])
def test_refusals_name_the_field(change, match):
    with pytest.raises(ConfigError, match=match):
        Hgrn2Config(**(SIZES | change))


def test_key_dim_may_differ_without_lower_bounds():
    """fla with D = 72, expand_ratio 16: 4 heads of K = 16 but V = 18; only the lower bound ties H·K to D."""
    cfg = Hgrn2Config(**(SIZES | dict(hidden_size=72, head_v_dim=18)), use_lower_bound=0)
    assert cfg.state_spec().concrete_shape(cfg.state_slots("float32")[0], 2) == (2, 4, 16, 18)


def test_refuses_unknown_fields_from_metadata():
    with pytest.raises(ConfigError, match=r"unknown fields \['expand_ratio'\]"):
        config_from_dict(Hgrn2Config(**SIZES).to_dict() | {"expand_ratio": 16})


@pytest.mark.parametrize("activation", ["float32", "float16"])
def test_state_spec(activation):
    spec = Hgrn2Config(**SIZES).state_spec(activation)
    assert spec.input_names() == [f"state_in.{i}.recurrent_state" for i in range(3)]
    assert spec.output_names() == [f"state_out.{i}.recurrent_state" for i in range(3)]
    (slot,) = spec.slots
    assert slot.shape == ("batch", "num_heads", "head_k_dim", "head_v_dim")
    assert (slot.dtype, slot.init, slot.per_layer) == ("float32", 0.0, True)  # fp32 whatever the activations
    assert spec.dims == {"num_heads": 4, "head_k_dim": 16, "head_v_dim": 16}
    assert spec.concrete_shape(slot, 5) == (5, 4, 16, 16)
    assert StateSpec.from_dict(spec.to_dict()) == spec


def test_step_matmul_shapes():
    cfg = Hgrn2Config(**SIZES)
    layer = [(64, 64), (64, 64), (64, 64), (64, 64), (96, 64), (96, 64), (64, 96)]
    assert list(cfg.step_matmul_shapes()) == layer * 3 + [(50, 64)]
