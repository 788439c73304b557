"""The torch-free core: the config registry, the state spec's named dims and name patterns, decode-step shapes."""
import pytest

from rrwkv_trt.core.config import config_classes, config_from_dict
from rrwkv_trt.core.errors import ConfigError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.state import StateSlot, StateSpec

SIZES = dict(vocab_size=50, n_embd=8, n_layer=2, dim_att=8, dim_ffn=32)


def test_built_in_families_are_found_without_a_list():
    assert {"rwkv4": Rwkv4Config, "rrwkv": RrwkvConfig}.items() <= config_classes().items()


def test_config_round_trip_and_refusals():
    cfg = RrwkvConfig(**SIZES, medium_interval=4)
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown model family 'hgrn9'; expected one of"):
        config_from_dict({**cfg.to_dict(), "family": "hgrn9"})
    with pytest.raises(ConfigError, match="medium_decays must be 0 or 1"):
        RrwkvConfig(**SIZES, medium_decays=2)
    with pytest.raises(ConfigError, match="n_embd must be an int >= 1"):
        Rwkv4Config(**{**SIZES, "n_embd": 0})


def test_state_names_come_from_the_patterns_read_back():
    spec = Rwkv4Config(**SIZES).state_spec()
    assert spec.input_names()[:2] == ["state_in.0.att_xx", "state_in.0.att_aa"]
    back = StateSpec.from_dict({**spec.to_dict(), "pattern": "state_in.L{layer}.{slot}"})
    assert back.input_names()[0] == "state_in.L0.att_xx" and back.output_names()[0] == "state_out.L0.att_xx"
    with pytest.raises(ConfigError, match="must use exactly the fields"):
        StateSpec.from_dict({**spec.to_dict(), "pattern": "state_in.{slot}"})


def test_named_dims_resolve_and_unknown_ones_are_refused():
    slot = StateSlot("S", ("batch", "heads", 4, "head_k"), "float32", 0.0)
    spec = StateSpec(n_layer=1, slots=(slot,), dims={"heads": 3, "head_k": 5})
    assert spec.concrete_shape(slot, 2) == (2, 3, 4, 5)
    assert StateSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match=r"dims \['heads'\] are neither 'batch' nor in the spec's dims"):
        StateSpec(n_layer=1, slots=(slot,), dims={"head_k": 5})


def test_decode_step_matmuls_include_the_mediums_and_end_with_the_head():
    rwkv4, rrwkv = Rwkv4Config(**SIZES), RrwkvConfig(**SIZES)
    assert len(rwkv4.step_matmul_shapes()) == 7 * 2 + 1 and rwkv4.step_matmul_shapes()[-1] == (50, 8)
    assert len(rrwkv.step_matmul_shapes()) == 11 * 2 + 1


def test_from_dict_checks_the_class():
    cfg = Rwkv4Config(**SIZES)
    assert Rwkv4Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="expected a rrwkv config, got family 'rwkv4'"):
        RrwkvConfig.from_dict(cfg.to_dict())


@pytest.mark.parametrize("change, match", [
    ({"n_layer": 10**9}, "n_layer must be an int in"),
    ({"n_layer": True}, "n_layer must be an int in"),
    ({"dims": {"width": 0}}, "dim 'width' must be an int in"),
    ({"slots": [{"name": "h", "shape": ["batch", 1 << 20, 1 << 20], "dtype": "float32", "init": 0.0}]},
     "elements per sequence"),
    ({"slots": [{"name": "h", "shape": ["batch", 4], "dtype": "float16", "init": -1e30}]}, "is not a float16 value"),
    ({"slots": [{"name": "h", "shape": ["batch", 4], "dtype": "float32", "init": 0.0, "per_layer": "yes"}]},
     "per_layer must be true or false"),
])
def test_state_spec_bounds_what_metadata_may_ask_for(change, match):
    data = Rwkv4Config(**SIZES).state_spec().to_dict() | change
    with pytest.raises(ConfigError, match=match):
        StateSpec.from_dict(data)
