"""The model fingerprint: which checkpoint an export (and every state file saved from it) belongs to.

sha256 over the canonical config JSON and the converted fp32 state dict (the tensors every precision is made from),
so the fp32, fp16, int8 and int4 exports of one checkpoint share a fingerprint and their states are interchangeable,
while another checkpoint of the same shapes has another. Written into the ONNX metadata as rrwkv.fingerprint
(core/metadata.py) and carried into quantized exports and engine sidecars.
"""
from __future__ import annotations

import hashlib

import torch

from rrwkv_trt.core.config import ModelConfig, config_to_json

# Bumped whenever what is hashed changes, so that two schemes never produce equal digests for different inputs.
SCHEME = b"rrwkv-fingerprint-1\0"


def model_fingerprint(config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> str:
    """Hex sha256 of `config` and `state_dict` (the checkpoint's converted weights, before any precision cast).

    The tensors are hashed in name order, each as its name, dtype, shape and little-endian float32 bytes, every
    field length-prefixed so that no two different inputs concatenate to the same bytes.
    """
    digest = hashlib.sha256(SCHEME)
    _field(digest, config_to_json(config).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to(device="cpu", dtype=torch.float32).contiguous()
        _field(digest, name.encode())
        _field(digest, b"float32")
        _field(digest, ",".join(map(str, tensor.shape)).encode())
        _field(digest, memoryview(tensor.numpy().astype("<f4", copy=False).reshape(-1).view("u1")))
    return digest.hexdigest()


def _field(digest: hashlib._Hash, data: bytes | memoryview) -> None:
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)
