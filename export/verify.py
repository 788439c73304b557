"""How closely an exported model's ONNX Runtime logits match PyTorch on the same checkpoint.

    python -m rrwkv_trt.export.verify CHECKPOINT OUT_DIR [--prompt TEXT] [--steps N]

Runs the prompt through both in one prefill call, then N greedy decode steps in each backend,
each carrying its own state, and prints the max abs logit error of both phases and whether the
greedy tokens agree. Exit code 1 when an error exceeds --atol (default: 1e-4, issue 2's bound, for fp32 exports;
the fp16 drift bound of runtime/tolerances.json for fp16 exports, whose reference is still the fp32 PyTorch model).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.tolerances import load_policy
from rrwkv_trt.runtime.tokenizer import Tokenizer

from .checkpoint import load_checkpoint
from .families import build_model


@torch.no_grad()
def compare(checkpoint: str, out_dir: str, prompt_ids: list[int], steps: int) -> dict:
    """Max abs logit errors (prefill, decode) and greedy agreement between PyTorch and ORT."""
    ckpt = load_checkpoint(checkpoint)
    model = build_model(ckpt.config, ckpt.state_dict)
    ids = np.asarray([prompt_ids], dtype=np.int64)
    with OrtSession(out_dir) as sess:
        ort_logits, ort_state = sess.run(ids, None)
        ref_logits, ref_state = model(torch.from_numpy(ids), model.init_state(1))
        prefill_err = float(np.abs(ref_logits.numpy() - ort_logits).max())
        sess.start_decode(ort_state)
        ort_tok = ref_tok = int(ref_logits[0, -1].argmax())
        step_err, agree = 0.0, 0
        for _ in range(steps):
            ort_step = np.asarray(sess.step(np.array([ort_tok]))).reshape(-1)
            ref_step, ref_state = model.step(torch.tensor([ref_tok]), ref_state)
            step_err = max(step_err, float(np.abs(ref_step.numpy().reshape(-1) - ort_step).max()))
            ort_tok, ref_tok = int(ort_step.argmax()), int(ref_step.argmax())
            agree += ort_tok == ref_tok
        precision = sess.info.precision
    return {"precision": precision, "prompt_tokens": len(prompt_ids), "prefill_max_abs_err": prefill_err,
            "decode_steps": steps, "decode_max_abs_err": step_err, "greedy_agreement": agree / max(steps, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="ONNX Runtime vs PyTorch logits on an exported model")
    p.add_argument("checkpoint")
    p.add_argument("out_dir")
    p.add_argument("--prompt", default="def ")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--atol", type=float, default=None,
                   help="max abs logit error [default: 1e-4 for fp32 exports, the fp16 drift bound for fp16]")
    args = p.parse_args(argv)
    prompt_ids = Tokenizer.from_dir(args.out_dir).encode(args.prompt)
    result = compare(args.checkpoint, args.out_dir, prompt_ids, args.steps)
    if args.atol is None:
        precision = result["precision"]
        args.atol = 1e-4 if precision == "fp32" else load_policy(precision).drift_for("ort-function").logits_atol
    print(json.dumps(result, indent=2))
    ok = max(result["prefill_max_abs_err"], result["decode_max_abs_err"]) <= args.atol
    print(f"ONNX Runtime vs PyTorch: max abs logit error {max(result['prefill_max_abs_err'], result['decode_max_abs_err']):.2e} "
          f"({'within' if ok else 'ABOVE'} {args.atol:g}); greedy agreement {result['greedy_agreement']:.0%}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
