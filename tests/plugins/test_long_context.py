"""Long context (issue 4), 20,000 tokens: the WKV4 / WKV4Medium backends stay finite and faithful against the float64
recurrence on adversarial inputs, and an exported RRWKV model prefilled in chunks agrees with itself (other chunk
sizes, step-by-step decode, the function bodies) and with PyTorch in float64. scripts/long_context.py runs the same
checks at 100,000 tokens. Helpers, regimes and the error metrics: tests/long_context.py."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from helpers import assert_close, tolerance
from kernel_shim import ORT_OPS, require_library, run_wkv4, run_wkv4_medium
from long_context import (GROUPS, adversarial_inputs, all_finite, assert_long_context_close, assert_model_state_close,
                          formula_f64, group_channels, group_key, run_chunked, run_stepwise, torch_f64_run, wkv_f64)
from ops.op_models import run_function_body
from safetensors.torch import save_file

from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.ops import naive_wkv4, naive_wkv4_medium
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.core.families.rrwkv import RrwkvConfig

T_LONG, C, B, S = 20_000, 96, 2, 16  # C: 16 channels per regime
OPS = {"wkv4": ("wkv4", None, 0), "medium": ("wkv4_medium", S, 0), "medium_decays": ("wkv4_medium", S, 1)}
DTYPES = {"fp32": np.float32, "fp16": np.float16}


def run_op(backend: str, x: dict, s: int | None, md: int):
    if backend == "function":
        feeds = {n: torch.from_numpy(a) for n, a in x.items()}
        return run_function_body("WKV4Medium", feeds, s=s, medium_decays=md) if s else run_function_body("WKV4", feeds)
    return run_wkv4_medium(backend, **x, s=s, medium_decays=md) if s else run_wkv4(backend, **x)


@pytest.mark.parametrize("op", OPS)
def test_f64_reference_matches_formula_and_naive(op):
    """wkv_f64 == the O(T^2) log-sum-exp definition (no recurrence) and == naive_wkv4(_medium) run in float64, on
    adversarial inputs (fp16 k, v: spikes to +-65504) with many key spikes, from a fresh and a carried state."""
    spec, s, md = OPS[op]
    x = adversarial_inputs(B, 200, 12, np.float16, seed=11, s=s, spike_rate=0.05)
    kw = {"s": s, "medium_decays": md} if s else {}
    ref = wkv_f64(**x, **kw)
    assert_long_context_close(spec, "long_context_reference_fp64", x, formula_f64(**x, **kw), ref)
    t64 = {n: torch.from_numpy(a).double() if a.dtype.kind == "f" else torch.from_numpy(a) for n, a in x.items()}
    naive = naive_wkv4_medium(**t64, **kw) if s else naive_wkv4(**t64)
    assert_long_context_close(spec, "long_context_reference_fp64", x, [t.numpy() for t in naive], ref)


@functools.lru_cache(maxsize=1)  # OP_CASES run case by case: keep one case's arrays (~45 MB)
def long_case(op: str, dtype: str):
    spec, s, md = OPS[op]
    x = adversarial_inputs(B, T_LONG, C, DTYPES[dtype], seed=4, s=s)
    return x, wkv_f64(**x, **({"s": s, "medium_decays": md} if s else {}))


# The function body's medium_decays = 1 branch (a Where over the same arithmetic) runs at 100,000 tokens in
# scripts/long_context.py and at short T in tests/ops; here it would only cost time.
OP_CASES = [(op, dtype, backend) for op in OPS for dtype in DTYPES for backend in ("cpu", "emu", "function")
            if not (backend == "function" and OPS[op][2])]


@pytest.mark.parametrize("op,dtype,backend", OP_CASES, ids=["-".join(c) for c in OP_CASES])
def test_long_context_op(op, dtype, backend):
    """20,000 tokens: all outputs finite; y and the final state within long_context_* (steady regimes) and
    long_context_drift_* (decays near 1, key spikes) of the op's spec against the float64 recurrence."""
    spec, s, md = OPS[op]
    x, ref = long_case(op, dtype)
    out = run_op(backend, x, s, md)
    for group in GROUPS:
        assert_long_context_close(spec, group_key(group, dtype), x, ref, out, group_channels(group, C))


# ---------------------------------------------------------------------------------------------------- model level
MODEL_T, STEP_T = 20_000, 2_000
IRREGULAR = [333, 1667, 4093, 5000, 8907]  # call boundaries off the window grid; 2000 is one of them


def adversarial_checkpoint(config: RrwkvConfig, seed: int) -> dict[str, torch.Tensor]:
    """random_blinkdl_state_dict with every layer's channels cycling through decays 1 - 1e-6 and e^-1000 and a
    bonus u = 60 on keys scaled by 40 (exp(u + k) overflows fp32); one channel in four keeps its drawn decay."""
    sd = random_blinkdl_state_dict(config, seed=seed)
    for i in range(config.n_layer):
        att = f"blocks.{i}.att."
        sd[att + "time_decay"][0::4] = -13.8  # w = -exp(time_decay) = -1e-6
        sd[att + "time_decay"][1::4] = 6.9    # w = -1e3
        sd[att + "time_first"][2::4] = 60.0
        sd[att + "key.weight"][2::4] *= 40.0  # |k| up to ~150
        sd[att + "key.weight"][0::8] *= 40.0  # and on half of the slow-decay channels
    return sd


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    config = RrwkvConfig(vocab_size=97, n_embd=32, n_layer=2, dim_att=32, dim_ffn=64, medium_interval=S)
    src = tmp_path_factory.mktemp("long_ckpt")
    save_file(adversarial_checkpoint(config, seed=5), str(src / "model.safetensors"))
    ckpt = load_checkpoint(src, family="rrwkv")
    out = export_checkpoint(ckpt, tmp_path_factory.mktemp("long_out") / "onnx")
    return build_model(ckpt.config, ckpt.state_dict), out


def test_model_long_prefill_chunked_stepwise_float64(long_model):
    """20,000 tokens (2 sequences) through ONNX Runtime: prefill in calls of 1024 tokens on the fused kernels ==
    irregular calls == step-by-step decode of the first 2000 tokens == the function bodies (stock ORT), all
    finite, and close to the PyTorch model in float64; then decoding continues finitely."""
    model, out = long_model
    ids = np.random.default_rng(0).integers(0, 97, (B, MODEL_T))
    kernels = OrtSession(out, threads=1, custom_ops_library=require_library(ORT_OPS))
    functions = OrtSession(out, threads=1, use_custom_ops=False)

    logits, state, _ = run_chunked(kernels, ids, 1024)
    assert all_finite(logits, state)
    ref_logits, ref_state = torch_f64_run(model, ids, 1024)
    consistent, faithful = ([tolerance("wkv4_medium", key, o) for o in ("y", "state", "state_logden")]
                            for key in ("long_context_model_consistency_fp32", "long_context_model_fp32"))

    def check(name, ref_l, ref_s, out_l, out_s, tol):
        assert all_finite(out_l, out_s), f"{name}: non-finite outputs"
        assert_close(f"{name}: logits", ref_l, out_l, *tol[0])
        assert_model_state_close(f"{name}: state", ref_s, out_s, tol[1], tol[2])

    check("float64 vs chunked", ref_logits, ref_state, logits, state, faithful)
    irr_logits, irr_state, kept = run_chunked(kernels, ids, IRREGULAR, keep_state_at=(STEP_T,))
    check("irregular vs 1024-token calls", logits, state, irr_logits, irr_state, consistent)
    fn_logits, fn_state, _ = run_chunked(functions, ids, 1024)
    check("function bodies vs kernels", logits, state, fn_logits, fn_state, consistent)
    step_logits, step_state = run_stepwise(kernels, ids[:, :STEP_T])
    check("stepwise vs prefill", irr_logits[:, :STEP_T], kept[STEP_T], step_logits, step_state, consistent)

    kernels.start_decode(state)  # decoding goes on after the long prefill
    for t in range(200):
        assert np.isfinite(kernels.step(ids[:, t])).all()
    assert all_finite(kernels.decode_state())
