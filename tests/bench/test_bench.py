"""`rrwkv-trt bench` (bench/): the bound arithmetic, the report's ratios and targets, worker processes, and
one end-to-end run on a tiny RWKV-4 .pth with every backend. No speed is asserted (targets live in the benchmark)."""
import json

import pytest
import torch
from click.testing import CliRunner

from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.runtime.backends.ort import find_custom_ops_library
from rrwkv_trt.bench import machine
from rrwkv_trt.bench.report import TARGETS, check_targets, format_model, prefill_flops, summarize_model
from rrwkv_trt.bench.plan import Settings, Variant
from rrwkv_trt.bench.suite import Worker
from rrwkv_trt.cli.main import main
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

TINY = Rwkv4Config(vocab_size=64, n_embd=32, n_layer=2, dim_att=32, dim_ffn=128)


def test_bound_arithmetic(monkeypatch):
    monkeypatch.setattr(machine, "best_seconds", lambda fn, reps: (fn(), 0.5)[1])
    bw = machine.read_bandwidth(nbytes=1 << 22)
    assert bw["bytes"] == 1 << 22 and bw["read_gb_s"] == round((1 << 22) / 0.5 / 1e9, 2)
    gemm = machine.gemm_throughput([(8, 16, 32), (4, 4, 4)])
    assert [r["gflop_s"] for r in gemm["shapes"]] == [round(2 * 8 * 16 * 32 / 0.5 / 1e9, 1), 0.0]
    assert gemm["best_gflop_s"] == gemm["shapes"][0]["gflop_s"]
    gemv = machine.gemv_model_shapes([(8, 4), (4, 8)])
    assert gemv["bytes"] == 2 * 32 * 4 and gemv["matrices"] == 2


def test_probes_measure_something():
    assert machine.read_bandwidth(nbytes=1 << 24, reps=2)["read_gb_s"] > 0
    assert machine.gemm_throughput([(64, 64, 64)], reps=1)["best_gflop_s"] > 0
    facts = machine.machine_facts()
    assert facts["cores"] >= 1 and facts["cpu"]


def _model(step_bytes=4000):
    cfg = Rwkv4Config(vocab_size=10, n_embd=4, n_layer=1, dim_att=4, dim_ffn=16).to_dict()
    return {"name": "m", "checkpoint": "m.pth", "config": cfg,
            "exports": {"fp32": {"step_bytes": step_bytes, "weight_bytes": step_bytes + 160}}}


def _variant(name, decode_s, prefill_s, weight_bytes=1 << 20, step_bytes=4000, b8=None):
    backend, precision = name.split()
    v = Variant(name, backend, precision, "f:f", {}, step_bytes)
    v.load = {"weight_bytes": weight_bytes, "load_seconds": 0.1, "baseline_rss_mb": 30.0}
    v.memory = {"peak_rss_mb": 30.0 + 1.5 * weight_bytes / 2**20}
    v.samples = {"decode_b1": [{"seconds": s} for s in decode_s],
                 "decode_b8": b8 or [{"seconds": s} for s in decode_s],
                 "prefill": [{"seconds": s, "ttft_seconds": s + 0.001} for s in prefill_s]}
    return v


def test_report_ratios_bounds_and_targets():
    s = Settings(reps=3, decode_steps=10, batch=8, batch_steps=5, prefill_tokens=100)
    bounds = {"bandwidth": {"read_gb_s": 8e-6, "min_gb_s": 7e-6, "max_gb_s": 9e-6},  # 8000 B/s
              "gemm": {"best_gflop_s": 1e-3}, "gemv_model": {"read_gb_s": 1e-6}}
    variants = [_variant("ort-kernel fp32", [1.0, 2.0, 0.5], [1.0, 1.0, 1.0]),
                _variant("ort-kernel int8", [0.25, 0.25, 0.25], [0.5, 0.5, 0.5], step_bytes=1000),
                _variant("rwkv-package fp32", [4.0, 4.0, 4.0], [2.0, 2.0, 2.0], b8={"ok": False,
                                                                                      "unsupported": "one sequence"})]
    agreement = {"int8": {"greedy_agreement": 0.99, "max_abs_logit_err": 0.1, "steps": 10,
                          "fp32_median_margin": 1.0, "steps_with_margin_below_2x_err": 0.05}}
    out = summarize_model(_model(), variants, bounds, agreement, s)
    assert out["baseline"] == "rwkv-package fp32"
    fp32 = out["variants"]["ort-kernel fp32"]
    d1 = fp32["decode_b1"]
    assert d1["tokens_per_s"] == {"median": 10.0, "min": 5.0, "max": 20.0, "n": 3}
    assert d1["bound_tokens_per_s"] == 2.0 and d1["fraction_of_bound"] == 5.0  # 8000 B/s / 4000 B per step
    assert fp32["decode_b8"]["bound_tokens_per_s"] == 16.0 and fp32["decode_b8"]["tokens_per_s"]["median"] == 40.0
    assert d1["vs_baseline"] == 4.0 and fp32["prefill"]["vs_baseline"] == 2.0
    assert prefill_flops(_model(), 100) == 2 * ((1000 - 40) * 100 + 40)
    assert fp32["prefill"]["bound_tokens_per_s"] == round(100 * 1e6 / prefill_flops(_model(), 100), 1)
    assert fp32["prefill"]["ttft_ms"]["median"] == 1001.0
    assert fp32["memory"]["added_over_weights"] == 1.5
    assert out["variants"]["rwkv-package fp32"]["decode_b8"] == {"unsupported": "one sequence"}
    targets = {t["target"]: t for t in out["targets"]}
    assert targets["fp32 decode (b1) vs rwkv package"]["met"] is True  # x4.0 >= 3
    assert targets["fp32 decode (b1) of bandwidth bound"]["met"] is True
    assert targets["int8 decode (b1) vs rwkv package"]["met"] is True  # x16
    assert targets["int8 greedy agreement with fp32"]["met"] is True
    assert targets["ort-kernel fp32 peak RSS (added) / weight bytes"]["met"] is False  # 1.5 > 1.3
    text = "\n".join(format_model(out, s))
    assert "n/a" in text and "MISSED" in text and "x4.00" in text and "tensorrt: skipped" in text
    agreement["int8"]["greedy_agreement"] = TARGETS["int8_greedy_agreement"] - 0.01
    assert {t["target"]: t["met"] for t in check_targets(out["variants"], agreement)}[
        "int8 greedy agreement with fp32"] is False


def test_worker_process(make_fake_model):
    model = make_fake_model()
    w = Worker("rrwkv_trt.bench.worker:ort_backend",
               dict(model=str(model), threads=1, use_custom_ops=False, weight_bytes=123))
    try:
        assert w.hello["ok"] and w.hello["weight_bytes"] == 123 and w.hello["pid"] != 0
        decode = w.call("decode", batch=3, steps=4)
        prefill = w.call("prefill", tokens=9, vocab=256, seed=0)
        assert decode["ok"] and decode["seconds"] > 0
        assert prefill["ok"] and prefill["ttft_seconds"] >= prefill["seconds"] > 0
        memory = w.call("memory")
        assert memory["peak_rss_mb"] >= memory["rss_mb"] > 0
        bad = w.call("no-such-op")
        assert not bad["ok"] and "unknown worker command 'no-such-op'" in bad["error"]
    finally:
        w.close()
    assert not w.proc.is_alive()
    broken = Worker("rrwkv_trt.bench.worker:ort_backend",
                    dict(model="/nonexistent", threads=1, use_custom_ops=False, weight_bytes=0))
    broken.close()
    assert not broken.hello["ok"] and "/nonexistent" in broken.hello["error"]


@pytest.mark.slow
def test_bench_end_to_end(tmp_path):
    if find_custom_ops_library() is None:
        pytest.skip("build/librrwkv_ort_ops.so not built (`make plugins`)")
    ckpt = tmp_path / "tiny.pth"
    torch.save(random_blinkdl_state_dict(TINY, seed=1), ckpt)
    args = ["bench", str(ckpt), "--no-random-169m", "--reps", "2", "--decode-steps", "3", "--batch", "2",
            "--batch-steps", "2", "--prefill", "8", "--agreement-steps", "20", "--precision", "int8",
            "--work-dir", str(tmp_path / "work"), "--results", str(tmp_path / "results")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "results").glob("*-edge-cpu.json")
    report = json.loads(path.read_text())
    [model] = report["models"]
    assert report["precisions"] == ["fp32", "int8"] and model["baseline"] == "rwkv-package fp32"
    assert sorted(model["variants"]) == ["ort-function fp32", "ort-kernel fp32", "ort-kernel int8",
                                         "rwkv-package fp32", "torch-eager fp32"]
    for name, v in model["variants"].items():
        assert v["decode_b1"]["tokens_per_s"]["n"] == 2 and v["prefill"]["tokens_per_s"]["median"] > 0, name
        assert v["memory"]["peak_rss_mb"] > v["memory"]["baseline_rss_mb"] > 0, name
        assert 0 < v["decode_b1"]["fraction_of_bound"], name
    assert "unsupported" in model["variants"]["rwkv-package fp32"]["decode_b2"]
    assert model["variants"]["torch-eager fp32"]["decode_b2"]["tokens_per_s"]["median"] > 0
    assert 0.5 <= model["agreement"]["int8"]["greedy_agreement"] <= 1 and model["agreement"]["int8"]["steps"] == 20
    assert len(model["bounds"]["bandwidth"]["method"]) and model["bounds"]["bandwidth"]["samples"] == 2
    assert {t["target"] for t in model["targets"]} >= {"int8 greedy agreement with fp32"}
    assert "x1.00" in result.output and f"wrote {path}" in result.output
    # A second run reuses the exports (their stamps match) and measures only what it is asked.
    again = CliRunner().invoke(main, args[:-4] + ["--backend", "ort-kernel", "--agreement-steps", "0",
                                                  "--work-dir", str(tmp_path / "work"),
                                                  "--results", str(tmp_path / "results")])
    assert again.exit_code == 0, again.output
    assert "exported" not in again.output
    assert sorted(json.loads(path.read_text())["models"][0]["variants"]) == ["ort-kernel fp32", "ort-kernel int8"]


def test_bench_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["bench", str(bad), "--no-random-169m", "--work-dir", str(tmp_path / "w"),
                                       "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "error: preparing the benchmark models failed" in result.output and "bad.pth" in result.output
    assert not (tmp_path / "r").exists()
    missing = CliRunner().invoke(main, ["bench", str(tmp_path / "none.pth")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_ort_options_sweep_script(make_fake_model, tmp_path):
    """scripts/ort_options_sweep.py runs every option set on a model and writes its JSON."""
    import subprocess
    import sys

    from helpers import REPO

    model, out = make_fake_model(), tmp_path / "sweep.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "ort_options_sweep.py"), str(model), "--reps", "1",
                           "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    assert set(results) >= {"defaults", "no spinning", "basic graph opt"}
    assert all(r["decode_b1"]["median"] > 0 and r["prefill_512"]["median"] > 0 for r in results.values())
    assert "defaults" in done.stdout and f"wrote {out}" in done.stdout
