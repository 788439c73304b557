"""What a lower precision costs in quality, on text the model never saw: bits per byte of every precision against
fp32 (runtime/evaluate.py) and greedy agreement with fp32, both on the held-out split of the shipped model's training
corpus (core/corpus.py: the stdlib files with crc32(path) % 20 == 0, sorted, each followed by a blank line).

- Text: the split's first `Settings.eval_bytes` bytes (200,000 by default: on Python 3.11, asyncio/sslproto.py to
  the start of encodings/mac_roman.py, doctest.py's 106 KB among them), undecodable bytes read as U+FFFD. It is
  streamed through each precision's export in chunks of 1024 tokens, the state carried.
- Greedy agreement as runtime/drift.py defines it for every user: the text's first PROMPT_TOKENS tokens are the
  prompt, then fp32 decodes `Settings.agreement_steps` greedy steps and every precision is fed fp32's token.
- Targets (issues 3 and 14), on bits per byte relative to fp32: fp16 and w16 (half precision) at most +0.1%, int8
  +0.5%, int4 +3%.
Only models whose export ships a tokenizer are measured: the seeded random models have none and are measured for
speed only. The sessions run in a worker process (bench/worker.py), like accuracy.py's.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

from rrwkv_trt.core.corpus import held_out_text
from rrwkv_trt.core.names import TOKENIZER_FILE, WORLD_VOCAB_FILE
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.drift import drift
from rrwkv_trt.runtime.evaluate import decode_utf8, evaluate_ids
from rrwkv_trt.runtime.tokenizer import Tokenizer

from .plan import Settings

# bits/byte relative to fp32, at most (issue 3; w16: issue 14's half-precision target)
MAX_DELTA = {"fp16": 0.001, "w16": 0.001, "int8": 0.005, "int4": 0.03}
PROMPT_TOKENS = 1024
TEXT_SOURCE = ("held-out split of the Python stdlib corpus (core/corpus.py: crc32(path) % 20 == 0, files sorted, each "
               "followed by a blank line), its first bytes")
NO_TOKENIZER = "the export has no tokenizer (a seeded random model): measured for speed only"


class QualityProbe:
    """Every precision's export of one model, opened together; `quality` is the worker command."""

    extra_ops = ("quality",)
    weight_bytes = 0

    def __init__(self, exports: dict[str, str], threads: int) -> None:
        self.sessions = {p: OrtSession(path, threads=threads) for p, path in exports.items()}
        self.tokenizer = Tokenizer.from_dir(exports["fp32"])
        self.tokenizer.check_fits(self.sessions["fp32"].vocab_size)

    def quality(self, text_bytes: int, agreement_steps: int) -> dict:
        """Returns: {"text": what was scored, "precisions": {name: EvalResult fields, backend, seconds},
        "agreement": {name: greedy agreement with fp32} (agreement_steps > 0 and a precision besides fp32)}."""
        data, files = held_out_text(text_bytes)
        text = decode_utf8(data, "replace", final=False, source="the stdlib's held-out split")
        ids = self.tokenizer.encode(text)
        n_bytes = len(text.encode("utf-8"))
        out = {"text": {"source": TEXT_SOURCE, "python": platform.python_version(), "bytes": n_bytes,
                        "tokens": len(ids), "files": files}, "precisions": {}}
        for name, session in self.sessions.items():
            start = time.perf_counter()
            result = evaluate_ids(session, ids, n_bytes)
            backend = "ort-kernel" if session.custom_ops_library is not None else "ort-function"
            out["precisions"][name] = {**result.to_dict(), "backend": backend,
                                       "seconds": round(time.perf_counter() - start, 2)}
        if agreement_steps > 0 and len(self.sessions) > 1:
            out["agreement"] = self._agreement(ids[:PROMPT_TOKENS], agreement_steps)
        return out

    def _agreement(self, prompt: list[int], steps: int) -> dict:
        report = drift(self.sessions, "fp32", prompt, steps, window=steps)
        return {name: {"greedy_agreement": report.agreement(name), "max_abs_logit_err": report.max_abs(name),
                       "steps": steps, "prompt_tokens": len(prompt)} for name in self.sessions if name != "fp32"}


def quality_probe(exports: dict[str, str], threads: int) -> QualityProbe:
    return QualityProbe(exports, threads)


def has_tokenizer(export_dir: str) -> bool:
    return any((Path(export_dir) / name).is_file() for name in (TOKENIZER_FILE, WORLD_VOCAB_FILE))


def measure_quality(model: dict, precisions: tuple[str, ...], settings: Settings, worker_class) -> dict:
    """Run the probe in a worker (`worker_class`: suite.Worker) and add the deltas and targets; {} when off."""
    exports = model["exports"]
    if settings.eval_bytes < 1:
        return {}
    if not has_tokenizer(exports["fp32"]["dir"]):
        return {"skipped": NO_TOKENIZER}
    dirs = {p: exports[p]["dir"] for p in ("fp32", *precisions) if p in exports}
    settings.log(f"{model['name']}: bits per byte of {', '.join(dirs)} on {settings.eval_bytes} bytes of held-out text")
    worker = worker_class("rrwkv_trt.bench.quality:quality_probe", dict(exports=dirs, threads=settings.threads))
    try:
        if not worker.hello.get("ok"):
            return {"error": worker.hello.get("error")}
        reply = worker.call("quality", args=dict(text_bytes=settings.eval_bytes,
                                                 agreement_steps=settings.agreement_steps))
    finally:
        worker.close()
    if not reply.pop("ok", False):
        return {"error": reply.get("error")}
    return add_deltas(reply)


def add_deltas(quality: dict) -> dict:
    """Each precision's bits per byte against fp32's (absolute and relative), and the targets met or missed."""
    base = quality["precisions"]["fp32"]["bits_per_byte"]
    for name, p in quality["precisions"].items():
        if name != "fp32":
            p["delta_bits_per_byte"] = p["bits_per_byte"] - base
            p["delta_relative"] = p["delta_bits_per_byte"] / base
    quality["targets"] = [
        {"target": f"{name} bits/byte vs fp32 on held-out text", "measured": round(p["delta_relative"], 6),
         "rule": f"<= +{MAX_DELTA[name]:.1%}", "met": p["delta_relative"] <= MAX_DELTA[name]}
        for name, p in quality["precisions"].items() if name in MAX_DELTA]
    return quality


def format_quality(quality: dict | None) -> list[str]:
    """The table's lines: bits per byte per precision, agreement on the text, the targets."""
    if not quality:
        return []
    if "precisions" not in quality:
        why = quality.get("skipped") or f"error: {quality.get('error')}"
        return [f"held-out text quality: skipped ({why})"]
    text, precisions = quality["text"], quality["precisions"]
    cells = [f"{name} {p['bits_per_byte']:.4f}" + (f" ({100 * p['delta_relative']:+.4f}%)" if name != "fp32" else "")
             for name, p in precisions.items()]
    files = len(text["files"])
    lines = [f"bits/byte on held-out text ({text['bytes']:,} bytes of {files} stdlib file{'s' * (files != 1)}, "
             f"Python {text['python']}; first token context only): " + ", ".join(cells)]
    for name, a in quality.get("agreement", {}).items():
        lines.append(f"{name} vs fp32 on held-out text: greedy agreement {100 * a['greedy_agreement']:.1f}% over "
                     f"{a['steps']} steps after a {a['prompt_tokens']}-token prompt, max |dlogit| "
                     f"{a['max_abs_logit_err']:.3g}")
    for t in quality["targets"]:
        lines.append(f"target: {t['target']} {t['rule']}: {100 * t['measured']:+.4f}% -> "
                     f"{'met' if t['met'] else 'MISSED'}")
    return lines
