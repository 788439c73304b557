"""rrwkv.fingerprint in the ONNX metadata (core/metadata.py) and the engine sidecar (core/sidecar.py): carried when
present, absent for older models, refused when malformed."""
import dataclasses

import pytest

from rrwkv_trt.core.errors import ConfigError
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.metadata import KEY_FINGERPRINT, ModelInfo, from_metadata, to_metadata
from rrwkv_trt.core.sidecar import EngineSidecar

CONFIG = Rwkv4Config(vocab_size=5, n_embd=4, n_layer=1, dim_att=4, dim_ffn=8)
INFO = ModelInfo(CONFIG, CONFIG.state_spec(), "fp32", fingerprint="3c" * 32)
SIDECAR = EngineSidecar(
    info=INFO, tensorrt_product="TensorRT", tensorrt_version="10.14.1", compute_capability="8.6", gpu_name=None,
    plugin_library="/x/librrwkv_trt_plugins_dyn.so", plugin_sha256="ab" * 32, max_batch=1, max_seq=16,
    profiles={"decode": 0, "prefill": 1}, plugin_layers=("node_wkv4",), engine_inspected=False, engine_bytes=1,
    source_model="/m/model.onnx", source_sha256="0" * 64)


def test_metadata_round_trip():
    props = to_metadata(INFO)
    assert props[KEY_FINGERPRINT] == "3c" * 32 and from_metadata(props) == INFO


def test_older_models_have_none():
    old = dataclasses.replace(INFO, fingerprint=None)
    props = to_metadata(old)
    assert KEY_FINGERPRINT not in props and from_metadata(props).fingerprint is None


@pytest.mark.parametrize("value", ["", "3C" * 32, "3c" * 31, "3c" * 32 + "\n", "g" * 64])
def test_malformed_fingerprint_is_refused(value):
    with pytest.raises(ConfigError, match="rrwkv.fingerprint must be 64 lowercase hex digits"):
        from_metadata(to_metadata(INFO) | {KEY_FINGERPRINT: value}, source="m.onnx")


def test_sidecar_carries_it():
    data = SIDECAR.to_dict()
    assert data["fingerprint"] == INFO.fingerprint and EngineSidecar.from_dict(data) == SIDECAR
    old = dataclasses.replace(SIDECAR, info=dataclasses.replace(INFO, fingerprint=None))
    assert "fingerprint" not in old.to_dict() and EngineSidecar.from_dict(old.to_dict()) == old
    with pytest.raises(ConfigError, match="field fingerprint must be 64 lowercase hex digits"):
        EngineSidecar.from_dict(data | {"fingerprint": "x"})
