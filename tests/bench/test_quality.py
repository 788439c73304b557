"""The benchmark's quality check (bench/quality.py): the held-out text is the trainer's held-out split, bits per byte
of each precision against fp32 with the targets, greedy agreement on that text, and the worker wiring. Fake models
(tests/fake_model.py, byte-level tokenizer) stand in for the exports: their logits are known, so is the result."""
from __future__ import annotations

import pytest

from rrwkv_trt.bench import quality
from rrwkv_trt.bench.plan import Settings
from rrwkv_trt.bench.quality import MAX_DELTA, QualityProbe, add_deltas, format_quality, measure_quality
from rrwkv_trt.bench.suite import Worker
from rrwkv_trt.core import corpus
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.evaluate import decode_utf8, evaluate_text
from rrwkv_trt.runtime.tokenizer import Tokenizer


def test_held_out_text_is_the_trainer_s_held_out_split():
    """core/corpus.py (torch-free, read by the bench) and training/corpus.py (the trainers) split alike."""
    pytest.importorskip("torch", reason="training/corpus.py needs torch ([export] extra)")
    from rrwkv_trt.training.corpus import stdlib_corpus

    _, held = stdlib_corpus()
    text, files = corpus.held_out_text(len(held) + 10)
    assert text == held.tobytes() and all(corpus.is_held_out(f) for f in files)
    prefix, first = corpus.held_out_text(5000)
    assert prefix == held.tobytes()[:5000] and first == files[:len(first)]
    assert corpus.is_held_out("doctest.py") and not corpus.is_held_out("os.py")


def _exports(make_fake_model) -> dict[str, str]:
    """fp32 predicts the successor byte; "int8" mispredicts after every "e", "int4" after every vowel."""
    vowels = {ord(c): 0 for c in "aeiou"}
    return {"fp32": str(make_fake_model("fp32")), "int8": str(make_fake_model("int8", next_token={ord("e"): 0})),
            "int4": str(make_fake_model("int4", next_token=vowels))}


def test_probe_measures_every_precision_on_the_held_out_text(make_fake_model):
    exports = _exports(make_fake_model)
    out = add_deltas(QualityProbe(exports, threads=1).quality(text_bytes=3000, agreement_steps=20))
    data, files = corpus.held_out_text(3000)
    text = decode_utf8(data, "replace", final=False, source="held-out")
    assert out["text"]["files"] == files and out["text"]["bytes"] == len(text.encode())
    for name, path in exports.items():
        with OrtSession(path, use_custom_ops=False) as session:
            want = evaluate_text(session, Tokenizer.from_dir(path), text)
        assert out["precisions"][name]["nats"] == pytest.approx(want.nats, rel=1e-12), name
    fp32, int8 = out["precisions"]["fp32"], out["precisions"]["int8"]
    assert int8["delta_bits_per_byte"] == pytest.approx(int8["bits_per_byte"] - fp32["bits_per_byte"])
    assert int8["delta_relative"] == pytest.approx(int8["delta_bits_per_byte"] / fp32["bits_per_byte"])
    assert "delta_relative" not in fp32
    # the fakes mispredict a different successor, so greedy agreement after the text prompt is partial or total
    assert set(out["agreement"]) == {"int8", "int4"} and out["agreement"]["int8"]["steps"] == 20
    assert out["agreement"]["int8"]["prompt_tokens"] == min(quality.PROMPT_TOKENS, out["text"]["tokens"])
    targets = {t["target"].split()[0]: t for t in out["targets"]}
    assert set(targets) == {"int8", "int4"} and targets["int4"]["rule"] == "<= +3.0%"
    assert targets["int4"]["met"] == (out["precisions"]["int4"]["delta_relative"] <= MAX_DELTA["int4"])


def test_targets_met_and_missed():
    base = {"bits_per_byte": 2.0}
    q = add_deltas({"precisions": {"fp32": base, "fp16": {"bits_per_byte": 2.001}, "int8": {"bits_per_byte": 2.02},
                                   "int4": {"bits_per_byte": 1.9}}, "text": {}})
    met = {t["target"].split()[0]: (t["met"], t["measured"]) for t in q["targets"]}
    assert met == {"fp16": (True, 0.0005), "int8": (False, 0.01), "int4": (True, -0.05)}
    q["text"] = {"bytes": 10, "files": ["a.py"], "python": "3.x"}
    lines = format_quality(q)
    assert "fp16 2.0010 (+0.0500%)" in lines[0]
    assert "target: int8 bits/byte vs fp32 on held-out text <= +0.5%: +1.0000% -> MISSED" in lines
    assert format_quality({}) == [] and "skipped (why)" in format_quality({"skipped": "why"})[0]


def test_measure_quality_in_a_worker(make_fake_model):
    exports = _exports(make_fake_model)
    model = {"name": "fake", "exports": {p: {"dir": d} for p, d in exports.items()}}
    out = measure_quality(model, ("fp32", "int8"), Settings(threads=1, eval_bytes=500, agreement_steps=5), Worker)
    assert list(out["precisions"]) == ["fp32", "int8"] and out["text"]["bytes"] <= 500
    assert out["agreement"]["int8"]["steps"] == 5 and len(out["targets"]) == 1
    assert measure_quality(model, ("fp32",), Settings(eval_bytes=0), Worker) == {}
    no_tokenizer = {"name": "random", "exports": {"fp32": {"dir": str(make_fake_model("r", tokenizer=False))}}}
    assert measure_quality(no_tokenizer, ("fp32",), Settings(), Worker) == {"skipped": quality.NO_TOKENIZER}
    broken = {"name": "x", "exports": {"fp32": {"dir": exports["fp32"]}, "int8": {"dir": "/nonexistent"}}}
    assert "/nonexistent" in measure_quality(broken, ("fp32", "int8"), Settings(threads=1), Worker)["error"]

