#!/usr/bin/env python3
"""Long-context check (issue 4): 100,000 tokens, finite and faithful against float64, op level and model level.

    python scripts/long_context.py [--tokens 100000] [--skip-model] [--results bench/results]

Needs the dev install (`make test` set-up: torch, onnxruntime, pytest) and `make plugins`
(build/librrwkv_cpu_testshim.so, build/librrwkv_ort_ops.so). `make long-context` runs it.

Op level (rrwkv::WKV4, and rrwkv::WKV4Medium with s = 16 and both medium_decays): adversarial inputs
(tests/long_context.py: channels in regimes with u + k up to 120, decays 1 - 1e-6 and e^-1000, keys spiking to
+-60000 / +-65504 in fp16, values up to ~4000, B = 2 with a fresh and a carried state) through
  cpu          the fused CPU kernel (plugins/wkv4/wkv4Cpu.cc) via the test shim
  emu          the CUDA kernel source (plugins/wkv4/wkv4Kernel.cuh) compiled under CPU emulation
  ort-kernel   the same CPU kernel inside ONNX Runtime (librrwkv_ort_ops.so, the runtime's path)
  ort-function the model-local FunctionProto in stock ONNX Runtime (a Scan over T)
in fp32 and with fp16 k/v/y, against the float64 recurrence (tests/long_context.py: wkv_f64), per regime group with
the spec tolerances long_context_{,drift_}{fp32,fp16} of plugins/wkv4{,_medium}/spec.yaml.

Model level: the shipped checkpoint (models/rrwkv-pystdlib) exported with `rrwkv-trt export` (fp32, and fp16 when the
exporter has --precision), fed T tokens of Python standard-library source: chunked prefill (1024 tokens per call;
RRWKV's sequence form costs O((T/s)^2 C) per call, so one call of 100,000 tokens is not an option) on the fused
kernels and on the function bodies, and T single-token decode steps on the fused kernels, against the PyTorch model
in float64 (chunked, its WKV op replaced by wkv_f64). Reports max |logit - float64 logit|, greedy (argmax) agreement
and the final state's errors.

Writes bench/results/<date>-long-context.json and prints tables. Exit status 1 when an output is not finite or an
op-level error exceeds its spec tolerance.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from rrwkv_trt.core.paths import BUILD_DIR, REPO_ROOT, SHIPPED_MODEL

sys.path[:0] = [str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "plugins")]

import numpy as np  # noqa: E402

import long_context as lc  # noqa: E402  (tests/long_context.py)

OPS = {  # name -> (spec folder, s, medium_decays)
    "WKV4": ("wkv4", None, 0),
    "WKV4Medium(s=16)": ("wkv4_medium", 16, 0),
    "WKV4Medium(s=16,decays)": ("wkv4_medium", 16, 1),
}
DTYPES = {"fp32": np.float32, "fp16": np.float16}
BACKENDS = ("cpu", "emu", "ort-kernel", "ort-function")


# ----------------------------------------------------------------------------------------------------------- op level
def run_backend(backend: str, x: dict, s: int | None, md: int):
    from kernel_shim import run_wkv4, run_wkv4_medium
    if backend in ("cpu", "emu"):
        return run_wkv4_medium(backend, **x, s=s, medium_decays=md) if s else run_wkv4(backend, **x)
    import torch
    from ops.op_models import run_function_body
    feeds = {n: torch.from_numpy(a) for n, a in x.items()}
    attrs = {"s": s, "medium_decays": md} if s else {}
    op_type = "WKV4Medium" if s else "WKV4"
    if backend == "ort-function":
        return run_function_body(op_type, feeds, **attrs)
    return ort_kernel_session(op_type, str(x["k"].dtype), tuple(sorted(attrs.items()))).run(None, x)


_SESSIONS: dict = {}


def ort_kernel_session(op_type: str, k_dtype: str, attrs: tuple):
    """One-node model, functions stripped, librrwkv_ort_ops.so registered: only the fused kernel can run it."""
    key = (op_type, k_dtype, attrs)
    if key not in _SESSIONS:
        import onnxruntime as ort
        import torch
        from kernel_shim import ORT_OPS, require_library
        from ops.op_models import MEDIUM_INPUTS, one_node_model

        from rrwkv_trt.export.ops import strip_functions
        kdt = torch.float16 if k_dtype == "float16" else torch.float32
        dtypes = {n: torch.float32 for n in MEDIUM_INPUTS} | {"k": kdt, "v": kdt, "pos0": torch.int64}
        so = ort.SessionOptions()
        so.register_custom_ops_library(str(require_library(ORT_OPS)))
        so.intra_op_num_threads = 2
        model = strip_functions(one_node_model(op_type, dtypes, dict(attrs)))
        _SESSIONS[key] = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


def op_level(T: int, C: int, B: int, seed: int) -> tuple[list[dict], bool]:
    rows, ok = [], True
    for op, (spec, s, md) in OPS.items():
        for dname, dtype in DTYPES.items():
            x = lc.adversarial_inputs(B, T, C, dtype, seed=seed, s=s)
            t0 = time.perf_counter()
            ref = lc.wkv_f64(**x, **({"s": s, "medium_decays": md} if s else {}))
            t_ref = time.perf_counter() - t0
            first = None
            for backend in BACKENDS:
                t0 = time.perf_counter()
                out = run_backend(backend, x, s, md)
                elapsed = time.perf_counter() - t0
                first = out if first is None else first
                row = {"op": op, "dtype": dname, "backend": backend, "T": T, "C": C, "B": B, "seconds": elapsed,
                       "reference_seconds": t_ref, "groups": {},
                       "vs_cpu": {"bitwise_identical": all(np.array_equal(a, b) for a, b in zip(out, first)),
                                  "y_max_diff_over_V": float((np.abs(np.asarray(out[0], np.float64) - first[0])
                                                              / lc.value_scale(x)).max())}}
                for group in lc.GROUPS:
                    channels = lc.group_channels(group, C)
                    key = lc.group_key(group, dname)
                    err = lc.long_context_errors(x, ref, out, channels)
                    try:
                        lc.assert_long_context_close(spec, key, x, ref, out, channels)
                        verdict = None
                    except AssertionError as e:
                        verdict = str(e)
                        ok = False
                    row["groups"][group] = {"tolerance_entry": key, "tolerance": spec_tolerance(spec, key),
                                            "pass": verdict is None, "failure": verdict, **err.row()}
                rows.append(row)
                print_op_row(row)
    return rows, ok


def spec_tolerance(spec: str, key: str) -> dict:
    from helpers import op_spec
    return op_spec(spec)["tolerances"][key]


def print_op_header() -> None:
    print(f"{'op':<24}{'dtype':<6}{'backend':<13}{'group':<7}{'finite':<7}{'max|dy|/V':>11}{'rel rms y':>11}"
          f"{'max|d(aa/bb)|/V':>17}{'max|d(pp+ln bb)|':>18}{'time s':>8}  spec")
    print("-" * 124)


def print_op_row(row: dict) -> None:
    for group, g in row["groups"].items():
        print(f"{row['op']:<24}{row['dtype']:<6}{row['backend']:<13}{group:<7}{str(g['finite']):<7}"
              f"{g['y_max_err']:>11.2e}{g['y_rel_rms']:>11.2e}{g['state_mean_max_err']:>17.2e}"
              f"{g['state_logden_max_err']:>18.2e}{row['seconds']:>8.2f}  {'ok' if g['pass'] else 'FAIL'}")


def print_summary(rows: list[dict]) -> None:
    """Per op, dtype and regime group: the worst of the backends, and how far they are from the CPU kernel."""
    print("\nSummary: the worst of the backends per op / dtype / regime group; max |y - y_cpu| / V over the backends;"
          " backends bitwise identical to cpu\n")
    print(f"{'op':<24}{'dtype':<6}{'group':<7}{'finite':<7}{'max|dy|/V':>11}{'max|d(aa/bb)|/V':>17}"
          f"{'max|d(pp+ln bb)|':>18}{'|y-y_cpu|/V':>13}  {'== cpu':<16}spec")
    keys = sorted({(r["op"], r["dtype"]) for r in rows}, key=lambda k: (list(OPS).index(k[0]), k[1] != "fp32"))
    for op, dtype in keys:
        case = [r for r in rows if r["op"] == op and r["dtype"] == dtype]
        spread = max(r["vs_cpu"]["y_max_diff_over_V"] for r in case)
        same = [r["backend"] for r in case if r["vs_cpu"]["bitwise_identical"] and r["backend"] != BACKENDS[0]]
        for group in lc.GROUPS:
            g = [r["groups"][group] for r in case]
            print(f"{op:<24}{dtype:<6}{group:<7}{str(all(x['finite'] for x in g)):<7}"
                  f"{max(x['y_max_err'] for x in g):>11.2e}{max(x['state_mean_max_err'] for x in g):>17.2e}"
                  f"{max(x['state_logden_max_err'] for x in g):>18.2e}{spread:>13.1e}  {','.join(same):<16}"
                  f"{'ok' if all(x['pass'] for x in g) else 'FAIL'} ({g[0]['tolerance_entry']})")


# -------------------------------------------------------------------------------------------------------- model level
def corpus_ids(tokenizer, T: int) -> np.ndarray:
    """T token ids of Python standard-library source (sorted files, concatenated): text like the training data."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    ids: list[int] = []
    for path in sorted(stdlib.glob("*.py")):
        ids += tokenizer.encode(path.read_text(encoding="utf-8", errors="replace"))
        if len(ids) >= T:
            break
    if len(ids) < T:
        raise SystemExit(f"only {len(ids)} tokens of text in {stdlib}")
    return np.asarray(ids[:T], np.int64)[None, :]  # [1, T]


def export(checkpoint: Path, out: Path, precision: str) -> bool:
    """`rrwkv-trt export` into `out` (replaced); False when this exporter has no --precision and fp16 was asked."""
    cli = str(Path(sys.executable).with_name("rrwkv-trt"))
    args = [cli, "export", str(checkpoint), "-o", str(out)]
    if precision != "fp32":
        help_text = subprocess.run([cli, "export", "--help"], capture_output=True, text=True).stdout
        if "--precision" not in help_text:
            return False
        args += ["--precision", precision]
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(args, check=True)
    return True


def model_level(checkpoint: Path, T: int, chunk: int, work: Path, threads: int) -> tuple[list[dict], bool]:
    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.families import build_model
    from rrwkv_trt.runtime.backends.ort import OrtSession
    from rrwkv_trt.runtime.tokenizer import Tokenizer

    rows, ok, ref = [], True, None
    for precision in ("fp32", "fp16"):
        out_dir = work / f"{checkpoint.name}-{precision}"
        t0 = time.perf_counter()
        if not export(checkpoint, out_dir, precision):
            print(f"  {precision}: skipped (this `rrwkv-trt export` has no --precision)")
            rows.append({"precision": precision, "skipped": "rrwkv-trt export has no --precision"})
            continue
        print(f"  {precision}: `rrwkv-trt export` to {out_dir}: {time.perf_counter() - t0:.1f} s")
        if ref is None:
            ids = corpus_ids(Tokenizer.from_dir(out_dir), T)
            ckpt = load_checkpoint(checkpoint)
            t0 = time.perf_counter()
            ref = lc.torch_f64_run(build_model(ckpt.config, ckpt.state_dict), ids, chunk)
            print(f"  PyTorch float64 reference, chunks of {chunk}: {time.perf_counter() - t0:.1f} s")
            ref_top = ref[0].argmax(-1)
        runs = {"ort-kernel chunked": lambda: lc.run_chunked(OrtSession(out_dir, threads=threads), ids, chunk)[:2],
                "ort-function chunked": lambda: lc.run_chunked(
                    OrtSession(out_dir, threads=threads, use_custom_ops=False), ids, chunk)[:2],
                "ort-kernel stepwise": lambda: lc.run_stepwise(OrtSession(out_dir, threads=threads), ids)}
        for name, run in runs.items():
            t0 = time.perf_counter()
            logits, state = run()
            elapsed = time.perf_counter() - t0
            finite = lc.all_finite(logits, state)
            ok &= finite
            d = np.abs(logits.astype(np.float64) - ref[0])  # [1, T, V]
            per_window = d.max(axis=(0, 2))
            n = min(1000, T)
            row = {"precision": precision, "run": name, "T": T, "tokens_per_call": chunk if "chunked" in name else 1,
                   "seconds": elapsed, "tokens_per_second": T / elapsed, "finite": finite,
                   "logits_max_abs_err": float(d.max()), "logits_max_abs_ref": float(np.abs(ref[0]).max()),
                   "logits_rel_rms": float(np.sqrt((d ** 2).mean() / (ref[0] ** 2).mean())),
                   "argmax_agreement": float((logits.argmax(-1) == ref_top).mean()),
                   "logits_max_abs_err_first_1000": float(per_window[:n].max()),
                   "logits_max_abs_err_last_1000": float(per_window[-n:].max()),
                   "state": lc.model_state_errors(ref[1], state)}
            rows.append(row)
            st = row["state"]
            print(f"  {precision:<5}{name:<22}{str(finite):<7}{row['logits_max_abs_err']:>11.2e}"
                  f"{row['logits_max_abs_err_first_1000']:>11.2e}{row['logits_max_abs_err_last_1000']:>11.2e}"
                  f"{row['logits_rel_rms']:>10.2e}{row['argmax_agreement']:>9.3%}{st['aa/bb']:>10.2e}"
                  f"{st['pp+ln(bb)']:>10.2e}{st['other slots']:>10.2e}{elapsed:>8.1f}{T / elapsed:>8.0f}")
    return rows, ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=100_000)
    p.add_argument("--channels", type=int, default=96, help="op level: C (a multiple of 6: 16 channels per regime)")
    p.add_argument("--batch", type=int, default=2, help="op level: B (sequence 0 fresh, the others carried)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", type=Path, default=SHIPPED_MODEL)
    p.add_argument("--chunk", type=int, default=1024, help="model level: tokens per prefill call")
    p.add_argument("--threads", type=int, default=2, help="model level: ONNX Runtime intra-op threads")
    p.add_argument("--skip-model", action="store_true")
    p.add_argument("--skip-ops", action="store_true")
    p.add_argument("--work", type=Path, default=BUILD_DIR / "long_context", help="export folder")
    p.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    args = p.parse_args()

    report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
              "machine": platform.machine(), "python": platform.python_version(), "tokens": args.tokens,
              "seed": args.seed, "regimes": list(lc.REGIMES), "groups": lc.GROUPS}
    ok = True
    if not args.skip_ops:
        print(f"\nOp level: T = {args.tokens}, C = {args.channels}, B = {args.batch}; errors against the float64 "
              "recurrence, y and aa/bb divided by the channel's value scale V\n")
        print_op_header()
        report["op_level"], ok_ops = op_level(args.tokens, args.channels, args.batch, args.seed)
        ok &= ok_ops
    if not args.skip_model:
        print(f"\nModel level: {args.model}, {args.tokens} tokens; errors against PyTorch float64\n")
        print(f"  {'prec':<5}{'run':<22}{'finite':<7}{'max|dlogit|':>11}{'first 1k':>11}{'last 1k':>11}"
              f"{'rel rms':>10}{'argmax':>9}{'aa/bb':>10}{'pp+ln bb':>10}{'other':>10}{'time s':>8}{'tok/s':>8}")
        report["model"], ok_model = model_level(args.model, args.tokens, args.chunk, args.work, args.threads)
        report["model_checkpoint"] = str(args.model.relative_to(REPO_ROOT) if args.model.is_relative_to(REPO_ROOT)
                                         else args.model)
        ok &= ok_model
    if "op_level" in report:
        print_summary(report["op_level"])
    report["passed"] = ok
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{report['date'][:10]}-long-context.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'PASSED' if ok else 'FAILED'}; wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
