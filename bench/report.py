"""Benchmark samples -> medians with min/max, ratios to the baseline, fractions of the machine's bounds, targets.

How to read the figures:
  * tok/s is a median over repetitions, [min, max] beside it. Decode at batch B counts B tokens per step.
  * "x base" divides by the baseline of the same model and measure, run in the same benchmark: the rwkv package
    where it runs (RWKV-4 .pth checkpoints), PyTorch eager otherwise.
  * "of bound" divides by what the machine allows at best. Decode at batch B: the lower of two bounds.
    Bandwidth: B x read bandwidth / (the weight bytes one step reads (every projection and the head, in the
    variant's own storage; the embedding is one row) + B x 2 x the bytes of one sequence's recurrent state, which the
    step reads and writes back): each byte moved counted at the read bandwidth. The state is negligible for RWKV-4
    (0.2 MB against 522 MB of weights at 169M), not for HGRN2's matrix state at batch 8 (8 x 4.7 MB each way against
    494 MB). Compute: the precision's multiply-add throughput / (2 x the step's matmul parameters) tokens/s, whatever
    B (B tokens cost B times the work of one): past a few sequences the weights are read once for all of them and
    the multiply-adds take over. The throughput is the fp32 GEMM's (numpy's BLAS at the prefill shapes) times
    COMPUTE_OVER_FP32 (below), by the instruction each precision's kernel must run per weight and row:
      - fp32, fp16 (run on the CPU through fp32 copies) and w16 (fp16 weights widened to fp32, then vfmadd231ps:
        plugins/matmul_wf16): fp32 FMA, 16 multiply-adds per 512-bit instruction: x1.
      - int8 (MatMulW8: int16 activations x int8 weights widened to int16, vpdpwssd): 32 multiply-adds per 512-bit
        instruction, issued at the FMA's rate (measured on the project's AMD EPYC, 2026-12-06: 3.6 G/s per core
        each, twelve independent accumulators, in thread CPU time): x2. The widening of the weights is extra work,
        so x2 stays an upper bound.
      - int4 (MatMulW4: int16 activations x int4 weights widened to int16, vpdpwssd, as int8): x2.
    The GEMM is taken at the prefill's rows, not at the batch's (M = 16): a BLAS at M = 16 is below its own peak
    (packing and edge costs over 16 rows; "gemm_batch" in the JSON records it), so it would bound that BLAS, not
    the machine, and the project's kernels exceed it. The GEMM itself reaches about 85% of the FMA instructions'
    rate (2026-12-06: 199 GFLOP/s against 2 x 117), so the compute bound is what a kernel as efficient as the BLAS
    reaches; a kernel with its weights in L2 can pass it (MatMulW8 at 16 rows: 94% of vpdpwssd's rate on one
    768 x 3072 weight), a whole step, whose weights stream from memory, has not (78% on one thread).
    The GEMM figure is the best of a probe before the repetitions and one per repetition (suite.gemm_summary).
    Prefill of T tokens: the precision's compute throughput (the GEMM's, x2 for int8 and int4 as above) / (2 x
    body-matmul parameters x T + 2 x head parameters), i.e. the FLOPs of the prompt's projections plus the first
    token's logits (the recurrences' own FLOPs are left out: HGRN2's, about 5·K·V per head and token, are 3.5% of
    its projections'); the exports' `logits_from` input lets a prefill compute the last position's logits only.
  * peak RSS is the worker process's VmHWM; "added" subtracts the process's RSS before the backend's libraries
    and weights were loaded (interpreter + numpy), and "/weights" divides the added peak by the bytes of the
    weights the backend holds. The added peak also holds what the backend costs with no weights at all (ONNX
    Runtime's library, session and arena: about 50 MB), which weighs more the smaller the weights: where the run
    has a much smaller model, a variant's added peak on it less its weights is that fixed cost, and each larger
    model's variant records "beyond_fixed_over_weights", (added - fixed) / weights: what its weights cost in
    memory. The RSS targets stay on the plain ratio; the report prints this one beside them as their cause.
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
    "w16_decode_vs_fp32": 1.8, "w16_decode_of_bound": 0.85, "b16_decode_of_bound": 0.7,
}
COMPUTE_OVER_FP32 = {"fp32": 1, "fp16": 1, "w16": 1, "int8": 2, "int4": 2}  # the docstring's compute bounds


def spread(values: list[float], digits: int = 1) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def summarize_measure(samples, tokens: int, bound_tok_s: float, bounds: dict | None = None) -> dict:
    """`bounds`: the candidate bounds (tokens/s by name) of which `bound_tok_s` is the lowest; recorded with the
    name of the one that limits."""
    if isinstance(samples, dict):  # {"ok": False, "unsupported" | "error": ...}
        return {k: samples[k] for k in ("unsupported", "error") if k in samples}
    out = {"tokens_per_s": spread([tokens / s["seconds"] for s in samples]),
           "bound_tokens_per_s": round(bound_tok_s, 1)}
    out["fraction_of_bound"] = round(out["tokens_per_s"]["median"] / bound_tok_s, 3)
    if bounds:
        out["bounds_tokens_per_s"] = {k: round(b, 1) for k, b in bounds.items()}
        out["limited_by"] = min(bounds, key=bounds.get)
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


def decode_compute_bound(v: Variant, model: dict, gemm_flop_s: float) -> float:
    """Tokens/s at which decode runs its multiply-adds at the precision's compute throughput (the docstring):
    2 x the step's matmul parameters per token, at any batch."""
    matmul_params = model["exports"]["fp32"]["step_bytes"] / 4
    return COMPUTE_OVER_FP32[v.precision] * gemm_flop_s / (2 * matmul_params)


def summarize_variant(v: Variant, model: dict, bounds: dict, settings: Settings) -> dict:
    if v.error:
        return {"backend": v.backend, "precision": v.precision, "error": v.error}
    bw = bounds["bandwidth"]["read_gb_s"] * 1e9
    T = settings.prefill_tokens
    gemm = bounds["gemm"]["best_gflop_s"] * 1e9
    out = {"backend": v.backend, "precision": v.precision, "weight_bytes": v.load["weight_bytes"],
           "step_bytes": v.step_bytes, "state_bytes": v.state_bytes, "load_seconds": round(v.load["load_seconds"], 2),
           "decode_b1": summarize_measure(v.samples.get("decode_b1", []), settings.decode_steps,
                                          decode_bound(v, bw, 1))}
    compute = decode_compute_bound(v, model, gemm)
    for b in settings.batches:
        candidates = {"bandwidth": decode_bound(v, bw, b), "compute": compute}
        out[f"decode_b{b}"] = summarize_measure(v.samples.get(f"decode_b{b}", []), b * settings.batch_steps,
                                                min(candidates.values()), candidates)
    out["prefill"] = summarize_measure(v.samples.get("prefill", []), T,
                                       T * COMPUTE_OVER_FP32[v.precision] * gemm / prefill_flops(model, T))
    peak, base = v.memory.get("peak_rss_mb"), v.load["baseline_rss_mb"]
    weight_mb = v.load["weight_bytes"] / 2**20
    if peak is not None:
        out["memory"] = {"peak_rss_mb": round(peak, 1), "baseline_rss_mb": round(base, 1),
                         "added_rss_mb": round(peak - base, 1), "weight_mb": round(weight_mb, 1),
                         "added_over_weights": round((peak - base) / weight_mb, 3) if weight_mb else None}
    return out


def _measures(settings: Settings) -> list[str]:
    return ["decode_b1", *(f"decode_b{b}" for b in settings.batches), "prefill"]


def add_ratios(variants: dict, baseline: str, settings: Settings) -> None:
    base = variants.get(baseline, {})
    for name, v in variants.items():
        for measure in _measures(settings):
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
    for precision, v in (("fp32", fp32), ("w16", w16), ("int8", int8)):
        rows.append((f"{precision} decode (b16) of min(bandwidth, compute) bound",
                     _get(v, "decode_b16", "fraction_of_bound"), ">=", TARGETS["b16_decode_of_bound"]))
    for name, v in variants.items():
        if name.startswith("ort-"):
            rows.append((f"{name} peak RSS (added) / weight bytes", _get(v, "memory", "added_over_weights"), "<=",
                         TARGETS["peak_rss_over_weights"]))
    return [{"target": t, "measured": m, "rule": f"{op} {lim}",
             "met": None if m is None else (m >= lim if op == ">=" else m <= lim)} for t, m, op, lim in rows]


FIXED_COST_MAX_WEIGHTS = 0.02  # a model whose weights are at most this fraction of another's measures the fixed cost


def add_runtime_fixed_memory(results: list[dict]) -> None:
    """Record, for each variant of a model, the backend's fixed memory cost measured by the same variant on a
    model with at most FIXED_COST_MAX_WEIGHTS of its weights in the same run (the docstring's "beyond fixed"), and
    attach it to that variant's RSS target."""
    for result in results:
        for name, v in result["variants"].items():
            mem = v.get("memory")
            if not mem or not mem["weight_mb"]:
                continue
            smaller = [(r["variants"][name]["memory"], r["name"]) for r in results
                       if r["variants"].get(name, {}).get("memory")
                       and r["variants"][name]["memory"]["weight_mb"] <= FIXED_COST_MAX_WEIGHTS * mem["weight_mb"]]
            if not smaller:
                continue
            ref, ref_name = min(smaller, key=lambda s: s[0]["weight_mb"])
            fixed = ref["added_rss_mb"] - ref["weight_mb"]
            mem.update(runtime_fixed_mb=round(fixed, 1), runtime_fixed_from=ref_name,
                       beyond_fixed_over_weights=round((mem["added_rss_mb"] - fixed) / mem["weight_mb"], 3))
            for t in result.get("targets", []):
                if t["target"] == f"{name} peak RSS (added) / weight bytes":
                    t["beyond_runtime_fixed"] = {"ratio": mem["beyond_fixed_over_weights"], "fixed_mb": mem[
                        "runtime_fixed_mb"], "measured_on": ref_name}


def _cell(m: dict, digits: int = 1) -> str:
    if "tokens_per_s" not in m:
        return "n/a" if "unsupported" in m else "error" if "error" in m else "-"
    s = m["tokens_per_s"]
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def _ratio(m: dict) -> str:
    return f"x{m['vs_baseline']:.2f}" if "vs_baseline" in m else ""


def _frac(m: dict) -> str:
    """The fraction of the bound; a batched decode's is marked with the bound that limits it (b: bandwidth,
    c: compute)."""
    if "fraction_of_bound" not in m:
        return ""
    return f"{100 * m['fraction_of_bound']:.0f}%" + {"bandwidth": "b", "compute": "c"}.get(m.get("limited_by"), "")


def _header(result: dict, settings: Settings) -> list[str]:
    b, cfg, bw = result["bounds"], result["config"], result["bounds"]["bandwidth"]
    batch_gemm = b.get("gemm_batch", {}).get("shapes") or [{}]
    columns = [f"decode b{n} tok/s" for n in (1, *settings.batches)] + [f"prefill {settings.prefill_tokens} tok/s"]
    return [f"{result['name']}: {cfg['family']}, {cfg['n_layer']} layers, vocab {cfg['vocab_size']}; "
            f"{settings.threads} threads, {settings.reps} reps; bounds: read {bw['read_gb_s']} GB/s "
            f"[{bw['min_gb_s']}, {bw['max_gb_s']}], GEMV at the model's shapes {b['gemv_model']['read_gb_s']} "
            f"GB/s, GEMM {b['gemm']['best_gflop_s']} GFLOP/s (x2 int8 and int4; at M = {batch_gemm[0].get('m')} "
            f"{b.get('gemm_batch', {}).get('best_gflop_s')}, not a bound); batched decode: % of min(bandwidth, "
            f"compute) bound, b/c = which; baseline (x base): {result['baseline']}",
            f"{'variant':<19} " + "  ".join(f"{c:>22} {'x base':>7} {'bound':>6}" for c in columns)
            + f" {'TTFT ms':>8} {'RSS MB':>7} {'/weights':>8}"]


def _variant_row(name: str, v: dict, settings: Settings) -> str:
    if "error" in v:
        return f"{name:<19} error: {v['error']}"
    pf, mem = v["prefill"], v.get("memory", {})
    ttft = f"{pf['ttft_ms']['median']:.0f}" if "ttft_ms" in pf else ""
    rss = f"{mem['peak_rss_mb']:.0f}" if mem else ""
    over = f"{mem['added_over_weights']:.2f}" if mem.get("added_over_weights") is not None else ""
    cells = [f"{_cell(v[m]):>22} {_ratio(v[m]):>7} {_frac(v[m]):>6}" for m in _measures(settings)]
    return f"{name:<19} " + "  ".join(cells) + f" {ttft:>8} {rss:>7} {over:>8}"


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
        fixed = t.get("beyond_runtime_fixed")
        cause = "" if fixed is None else (f" ({fixed['ratio']} beyond the backend's fixed {fixed['fixed_mb']} MB, "
                                          f"measured on {fixed['measured_on']})")
        lines.append(f"target: {t['target']} {t['rule']}: {t['measured']} -> {mark}{cause}")
    lines += format_quality(result.get("quality"))
    lines += [f"{name}: skipped ({why})" for name, why in result["skipped"].items()]
    return lines
