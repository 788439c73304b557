"""How closely an exported model's ONNX Runtime logits match PyTorch on the same checkpoint.

    python -m rrwkv_trt.reference.verify CHECKPOINT MODEL [--prompt TEXT] [--steps N]

Runs the prompt through both in one prefill call and takes the max abs logit error over every position; then N
decode steps in each backend, each carrying its own state, both fed PyTorch's greedy tokens (runtime/drift.py:
the project's one definition of greedy agreement), and prints the max abs logit error of both phases and the
greedy agreement. Exit code 1 when an error exceeds --atol (default: 1e-4, issue 2's bound, for fp32 exports;
the fp16 drift bound of runtime/tolerances.json for fp16 exports, whose reference is still the fp32 PyTorch model);
exit code 2, with one `error: ...` line, for a user error (a missing or malformed file).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.drift import drift
from rrwkv_trt.runtime.tolerances import load_policy
from rrwkv_trt.runtime.tokenizer import Tokenizer

from .torch_session import TorchSession

EXIT_USER_ERROR = 2  # the rrwkv-trt CLI's code for a user error


def compare(checkpoint: str, model: str, prompt_ids: list[int], steps: int) -> dict:
    """Max abs logit errors (prefill, decode) and greedy agreement between PyTorch and ORT."""
    ids = np.asarray([prompt_ids], dtype=np.int64)
    with OrtSession(model) as ort_session, TorchSession(checkpoint) as torch_session:
        ort_logits, _ = ort_session.run(ids)
        torch_logits, _ = torch_session.run(ids)
        prefill_err = float(np.abs(torch_logits - ort_logits).max())
        report = drift({"pytorch": torch_session, "ort": ort_session}, "pytorch", prompt_ids, steps, window=steps or 1)
        precision = ort_session.info.precision
    return {"precision": precision, "prompt_tokens": len(prompt_ids), "prefill_max_abs_err": prefill_err,
            "decode_steps": steps, "decode_max_abs_err": report.decode_max_abs("ort"),
            "greedy_agreement": report.agreement("ort")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rrwkv_trt.reference.verify",
                                description="ONNX Runtime vs PyTorch logits on an exported model")
    p.add_argument("checkpoint")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--prompt", default="def ")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--atol", type=float, default=None,
                   help="max abs logit error [default: 1e-4 for fp32 exports, the fp16 drift bound for fp16]")
    args = p.parse_args(argv)
    try:
        prompt_ids = Tokenizer.from_dir(args.model).encode(args.prompt)
        result = compare(args.checkpoint, args.model, prompt_ids, args.steps)
        if args.atol is None:
            precision = result["precision"]
            args.atol = 1e-4 if precision == "fp32" else load_policy(precision).drift_for("ort-function").logits_atol
    except UserError as err:  # as the rrwkv-trt CLI does: one line, exit code 2
        message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(json.dumps(result, indent=2))
    worst = max(result["prefill_max_abs_err"], result["decode_max_abs_err"])
    ok = worst <= args.atol
    print(f"ONNX Runtime vs PyTorch: max abs logit error {worst:.2e} ({'within' if ok else 'ABOVE'} {args.atol:g}); "
          f"greedy agreement {result['greedy_agreement']:.0%}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
