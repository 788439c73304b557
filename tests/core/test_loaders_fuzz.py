"""The core's loaders of untrusted metadata refuse anything malformed with a ConfigError, never another exception."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rrwkv_trt.core.config import config_from_dict
from rrwkv_trt.core.errors import ConfigError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.metadata import ModelInfo, from_metadata, to_metadata
from rrwkv_trt.core.state import StateSpec

VALID = to_metadata(ModelInfo(RrwkvConfig(vocab_size=5, n_embd=4, n_layer=2, dim_att=4, dim_ffn=8),
                              RrwkvConfig(vocab_size=5, n_embd=4, n_layer=2, dim_att=4, dim_ffn=8).state_spec(),
                              "fp32"))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)

pytestmark = pytest.mark.fuzz


def _refuses_or_accepts(load, data):
    try:
        load(data)
    except ConfigError:
        pass


@given(st.dictionaries(st.sampled_from(sorted(json.loads(VALID["rrwkv.config"]))), json_values, max_size=9))
def test_config_from_dict(data):
    _refuses_or_accepts(config_from_dict, data)


@given(json_values)
def test_state_spec_from_dict(data):
    _refuses_or_accepts(StateSpec.from_dict, data)


@given(st.sampled_from(sorted(VALID)), json_values)
def test_metadata_with_one_field_replaced(key, value):
    _refuses_or_accepts(from_metadata, {**VALID, key: json.dumps(value)})


@given(st.sampled_from(["n_layer", "pattern", "slots", "dims"]), json_values)
def test_state_spec_with_one_field_replaced(key, value):
    data = json.loads(VALID["rrwkv.state_spec"])
    _refuses_or_accepts(StateSpec.from_dict, {**data, key: value})
