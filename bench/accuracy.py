"""Accuracy of the weight-only w16 / int8 / int4 exports against the fp32 export, both on ONNX Runtime.

Greedy agreement as runtime/drift.py defines it for all its users: a seeded prompt is prefilled, then the fp32
session decodes greedily and every session is fed fp32's token at each step, each carrying its own state, so
agreement counts the steps where a candidate's argmax equals fp32's, and the max |logit - fp32 logit| covers the
prefill and every step. fp32's top-1 minus top-2 margin says how fragile the argmax is: a candidate whose logits
are off by at most e can only flip steps whose margin is below 2e (a random model's near-tied logits flip
where a trained model's do not). Runs in a benchmark worker (bench/worker.py), not in the coordinator, so the
sessions' memory is not the coordinator's.
"""
from __future__ import annotations

import numpy as np

from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.drift import drift

MIN_GREEDY_AGREEMENT = 0.98  # issue target for int8 over 1000 tokens


class AgreementProbe:
    """fp32 and the candidates of one model, opened together; `agreement` is the worker command."""

    extra_ops = ("agreement",)
    weight_bytes = 0

    def __init__(self, reference: str, candidates: dict[str, str], threads: int) -> None:
        self.sessions = {"fp32": OrtSession(reference, threads=threads)}
        self.sessions |= {name: OrtSession(path, threads=threads) for name, path in candidates.items()}

    def agreement(self, steps: int, prompt_tokens: int, seed: int) -> dict:
        vocab = self.sessions["fp32"].vocab_size
        prompt = np.random.default_rng(seed).integers(0, vocab, prompt_tokens).tolist()
        report = drift(self.sessions, "fp32", prompt, steps, window=steps)
        margins = np.asarray(report.margins)
        out = {}
        for name in self.sessions:
            if name != "fp32":
                err = report.max_abs(name)
                out[name] = {"greedy_agreement": report.agreement(name), "max_abs_logit_err": err, "steps": steps,
                             "prompt_tokens": prompt_tokens, "fp32_median_margin": float(np.median(margins)),
                             "steps_with_margin_below_2x_err": float(np.mean(margins < 2 * err))}
        return out


def agreement_probe(reference: str, candidates: dict[str, str], threads: int) -> AgreementProbe:
    return AgreementProbe(reference, candidates, threads)
