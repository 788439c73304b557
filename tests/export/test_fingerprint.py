"""export/fingerprint.py: the digest of a checkpoint's config and converted weights that state files check."""
import dataclasses

import torch

from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.export.fingerprint import model_fingerprint

CONFIG = RrwkvConfig(vocab_size=11, n_embd=4, n_layer=1, dim_att=4, dim_ffn=8)


def _weights() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"head.weight": torch.randn(11, 4, generator=g), "ln_out.weight": torch.randn(4, generator=g)}


def test_deterministic_and_order_free():
    weights = _weights()
    digest = model_fingerprint(CONFIG, weights)
    assert len(digest) == 64 and digest == model_fingerprint(CONFIG, dict(reversed(list(weights.items()))))


def test_every_part_counts():
    weights, digest = _weights(), model_fingerprint(CONFIG, _weights())
    nudged = dict(weights)
    nudged["ln_out.weight"] = torch.nextafter(weights["ln_out.weight"], torch.tensor(1e9))  # one ulp
    renamed = {("x." + k if k == "head.weight" else k): v for k, v in weights.items()}
    reshaped = weights | {"head.weight": weights["head.weight"].reshape(4, 11)}
    other_config = dataclasses.replace(CONFIG, medium_interval=8)
    digests = {model_fingerprint(CONFIG, nudged), model_fingerprint(CONFIG, renamed),
               model_fingerprint(CONFIG, reshaped), model_fingerprint(other_config, weights)}
    assert digest not in digests and len(digests) == 4


def test_the_stored_dtype_does_not_count():
    """The converted state dict is float32; a tensor held in another float dtype hashes as its float32 values."""
    weights = _weights()
    halves = {k: v.half() for k, v in weights.items()}
    assert model_fingerprint(CONFIG, halves) == model_fingerprint(CONFIG, {k: v.float() for k, v in halves.items()})
