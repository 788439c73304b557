"""Benchmark samples -> medians with min/max, ratios to the baseline, fractions of the machine's bounds, targets.

How to read the figures:
  * tok/s is a median over repetitions, [min, max] beside it. Decode at batch B counts B tokens per step.
  * "x base" divides by the baseline of the same model and measure, run in the same benchmark: the rwkv package
    where it runs (RWKV-4 .pth checkpoints), PyTorch eager otherwise.
  * "of bound" divides by what the machine allows at best. Decode: B x read bandwidth / (the weight bytes one step
    reads (every projection and the head, in the variant's own storage; the embedding is one row) + B x 2 x the
    bytes of one sequence's recurrent state, which the step reads and writes back): each byte moved counted at the
    read bandwidth. The state is negligible for RWKV-4 (0.2 MB against 522 MB of weights at 169M), not for HGRN2's
    matrix state at batch 8 (8 x 4.7 MB each way against 494 MB). Prefill of T tokens: GEMM throughput / (2 x
    body-matmul parameters x T + 2 x head parameters), i.e. the FLOPs of the prompt's projections plus the first
    token's logits (the recurrences' own FLOPs are left out: HGRN2's, about 5·K·V per head and token, are 3.5% of
    its projections'); a prefill that computes logits for every position (the ONNX graph does) does more than this
    minimum.
  * peak RSS is the worker process's VmHWM; "added" subtracts the process's RSS before the backend's libraries
    and weights were loaded (interpreter + numpy), and "/weights" divides the added peak by the bytes of the
    weights the backend holds.
"""
from __future__ import annotations

import statistics

from rrwkv_trt.core.config import config_from_dict

from .plan import Settings, Variant
from .quality import format_quality

TENSORRT_SKIP = "TensorRT needs an NVIDIA GPU and full TensorRT; neither is on this machine, so it is not measured"

TARGETS = {  # issue 5 (issue 14 for w16), for models the rwkv package runs (the 169M RWKV-4)
    "fp32_decode_vs_rwkv": 3.0, "fp32_decode_of_bound": 0.9, "int8_decode_vs_rwkv": 6.0,
    "int8_greedy_agreement": 0.98, "prefill_vs_rwkv": 1.0, "peak_rss_over_weights": 1.3,
    "w16_decode_vs_fp32": 1.8, "w16_decode_of_bound": 0.85,
}


def spread(values: list[float], digits: int = 1) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def summarize_measure(samples, tokens: int, bound_tok_s: float) -> dict:
    if isinstance(samples, dict):  # {"ok": False, "unsupported" | "error": ...}
        return {k: samples[k] for k in ("unsupported", "error") if k in samples}
    out = {"tokens_per_s": spread([tokens / s["seconds"] for s in samples]),
           "bound_tokens_per_s": round(bound_tok_s, 1)}
    out["fraction_of_bound"] = round(out["tokens_per_s"]["median"] / bound_tok_s, 3)
    if "ttft_seconds" in samples[0]:
        out["ttft_ms"] = spread([1e3 * s["ttft_seconds"] for s in samples])
    return out


def prefill_flops(model: dict, tokens: int) -> float:
    matmul_params = model["exports"]["fp32"]["step_bytes"] / 4
    n, k = config_from_dict(model["config"]).step_matmul_shapes()[-1]
    head = n * k
    return 2.0 * ((matmul_params - head) * tokens + head)


def decode_bound(v: Variant, bandwidth_bytes_s: float, batch: int) -> float:
    """Tokens/s at which a decode step of `batch` sequences moves its bytes at the read bandwidth: the weights read
    once, each sequence's state read and written."""
    return batch * bandwidth_bytes_s / (v.step_bytes + batch * 2 * v.state_bytes)


def summarize_variant(v: Variant, model: dict, bounds: dict, settings: Settings) -> dict:
    if v.error:
        return {"backend": v.backend, "precision": v.precision, "error": v.error}
    bw = bounds["bandwidth"]["read_gb_s"] * 1e9
    T = settings.prefill_tokens
    gemm = bounds["gemm"]["best_gflop_s"] * 1e9
    out = {"backend": v.backend, "precision": v.precision, "weight_bytes": v.load["weight_bytes"],
           "step_bytes": v.step_bytes, "state_bytes": v.state_bytes, "load_seconds": round(v.load["load_seconds"], 2),
           "decode_b1": summarize_measure(v.samples.get("decode_b1", []), settings.decode_steps,
                                          decode_bound(v, bw, 1)),
           f"decode_b{settings.batch}": summarize_measure(
               v.samples.get(f"decode_b{settings.batch}", []), settings.batch * settings.batch_steps,
               decode_bound(v, bw, settings.batch)),
           "prefill": summarize_measure(v.samples.get("prefill", []), T, T * gemm / prefill_flops(model, T))}
    peak, base = v.memory.get("peak_rss_mb"), v.load["baseline_rss_mb"]
    weight_mb = v.load["weight_bytes"] / 2**20
    if peak is not None:
        out["memory"] = {"peak_rss_mb": round(peak, 1), "baseline_rss_mb": round(base, 1),
                         "added_rss_mb": round(peak - base, 1), "weight_mb": round(weight_mb, 1),
                         "added_over_weights": round((peak - base) / weight_mb, 3) if weight_mb else None}
    return out


def add_ratios(variants: dict, baseline: str, settings: Settings) -> None:
    base = variants.get(baseline, {})
    for name, v in variants.items():
        for measure in ("decode_b1", f"decode_b{settings.batch}", "prefill"):
            mine, ref = v.get(measure, {}), base.get(measure, {})
            if "tokens_per_s" in mine and "tokens_per_s" in ref:
                mine["vs_baseline"] = round(mine["tokens_per_s"]["median"] / ref["tokens_per_s"]["median"], 2)


def summarize_model(model: dict, variants: list[Variant], bounds: dict, agreement: dict, settings: Settings,
                    skipped: dict[str, str] | None = None) -> dict:
    """`skipped`: backends that cannot run this model, with the reason (TensorRT's is always added)."""
    summary = {v.name: summarize_variant(v, model, bounds, settings) for v in variants}
    baseline = "rwkv-package fp32" if "rwkv-package fp32" in summary else "torch-eager fp32"
    add_ratios(summary, baseline, settings)
    out = {"name": model["name"], "checkpoint": model["checkpoint"], "config": model["config"],
           "bounds": bounds, "baseline": baseline, "variants": summary, "agreement": agreement,
           "skipped": {**(skipped or {}), "tensorrt": TENSORRT_SKIP}}
    if baseline == "rwkv-package fp32":
        out["targets"] = check_targets(summary, agreement)
    return out


def _get(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ratio_of(a: dict, b: dict, measure: str) -> float | None:
    """Median tok/s of `a` over `b` for `measure`, None unless both were measured."""
    x, y = _get(a, measure, "tokens_per_s", "median"), _get(b, measure, "tokens_per_s", "median")
    return None if x is None or not y else round(x / y, 2)


def check_targets(variants: dict, agreement: dict) -> list[dict]:
    fp32, int8 = variants.get("ort-kernel fp32", {}), variants.get("ort-kernel int8", {})
    w16 = variants.get("ort-kernel w16", {})
    w16_vs_fp32 = _ratio_of(w16, fp32, "decode_b1")
    rows = [("fp32 decode (b1) vs rwkv package", _get(fp32, "decode_b1", "vs_baseline"), ">=",
             TARGETS["fp32_decode_vs_rwkv"]),
            ("fp32 decode (b1) of bandwidth bound", _get(fp32, "decode_b1", "fraction_of_bound"), ">=",
             TARGETS["fp32_decode_of_bound"]),
            ("int8 decode (b1) vs rwkv package", _get(int8, "decode_b1", "vs_baseline"), ">=",
             TARGETS["int8_decode_vs_rwkv"]),
            ("int8 greedy agreement with fp32", _get(agreement, "int8", "greedy_agreement"), ">=",
             TARGETS["int8_greedy_agreement"]),
            ("fp32 prefill vs rwkv package", _get(fp32, "prefill", "vs_baseline"), ">=", TARGETS["prefill_vs_rwkv"]),
            ("w16 decode (b1) vs ort-kernel fp32", w16_vs_fp32, ">=", TARGETS["w16_decode_vs_fp32"]),
            ("w16 decode (b1) of bandwidth bound", _get(w16, "decode_b1", "fraction_of_bound"), ">=",
             TARGETS["w16_decode_of_bound"])]
    for name, v in variants.items():
        if name.startswith("ort-"):
            rows.append((f"{name} peak RSS (added) / weight bytes", _get(v, "memory", "added_over_weights"), "<=",
                         TARGETS["peak_rss_over_weights"]))
    return [{"target": t, "measured": m, "rule": f"{op} {lim}",
             "met": None if m is None else (m >= lim if op == ">=" else m <= lim)} for t, m, op, lim in rows]


def _cell(m: dict, digits: int = 1) -> str:
    if "tokens_per_s" not in m:
        return "n/a" if "unsupported" in m else "error" if "error" in m else "-"
    s = m["tokens_per_s"]
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def _ratio(m: dict) -> str:
    return f"x{m['vs_baseline']:.2f}" if "vs_baseline" in m else ""


def _frac(m: dict) -> str:
    return f"{100 * m['fraction_of_bound']:.0f}%" if "fraction_of_bound" in m else ""


def _header(result: dict, settings: Settings) -> list[str]:
    b, cfg, bw = result["bounds"], result["config"], result["bounds"]["bandwidth"]
    return [f"{result['name']}: {cfg['family']}, {cfg['n_layer']} layers, vocab {cfg['vocab_size']}; "
            f"{settings.threads} threads, {settings.reps} reps; bounds: read {bw['read_gb_s']} GB/s "
            f"[{bw['min_gb_s']}, {bw['max_gb_s']}], GEMV at the model's shapes {b['gemv_model']['read_gb_s']} "
            f"GB/s, GEMM {b['gemm']['best_gflop_s']} GFLOP/s; baseline (x base): {result['baseline']}",
            f"{'variant':<19} {'decode b1 tok/s':>22} {'x base':>7} {'bound':>5}  "
            f"{f'decode b{settings.batch} tok/s':>22} {'x base':>7} {'bound':>5}  "
            f"{f'prefill {settings.prefill_tokens} tok/s':>22} {'x base':>7} {'bound':>5} "
            f"{'TTFT ms':>8} {'RSS MB':>7} {'/weights':>8}"]


def _variant_row(name: str, v: dict, settings: Settings) -> str:
    if "error" in v:
        return f"{name:<19} error: {v['error']}"
    d1, d8, pf, mem = v["decode_b1"], v[f"decode_b{settings.batch}"], v["prefill"], v.get("memory", {})
    ttft = f"{pf['ttft_ms']['median']:.0f}" if "ttft_ms" in pf else ""
    rss = f"{mem['peak_rss_mb']:.0f}" if mem else ""
    over = f"{mem['added_over_weights']:.2f}" if mem.get("added_over_weights") is not None else ""
    cells = [f"{_cell(m):>22} {_ratio(m):>7} {_frac(m):>5}" for m in (d1, d8, pf)]
    return f"{name:<19} {cells[0]}  {cells[1]}  {cells[2]} {ttft:>8} {rss:>7} {over:>8}"


def _agreement_line(name: str, a: dict) -> str:
    return (f"{name} vs fp32 over {a['steps']} greedy steps: agreement {100 * a['greedy_agreement']:.1f}%, "
            f"max |dlogit| {a['max_abs_logit_err']:.3g}; fp32 top-2 margin median {a['fp32_median_margin']:.3g}, "
            f"below 2x max |dlogit| at {100 * a['steps_with_margin_below_2x_err']:.1f}% of steps")


def format_model(result: dict, settings: Settings) -> list[str]:
    """The printed table of one model: header with the bounds, a row per variant, agreement, targets."""
    lines = _header(result, settings)
    lines += [_variant_row(name, v, settings) for name, v in result["variants"].items()]
    lines += [_agreement_line(name, a) for name, a in result["agreement"].items() if isinstance(a, dict)]
    for t in result.get("targets", []):
        mark = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"target: {t['target']} {t['rule']}: {t['measured']} -> {mark}")
    lines += format_quality(result.get("quality"))
    lines += [f"{name}: skipped ({why})" for name, why in result["skipped"].items()]
    return lines
