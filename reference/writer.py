"""PyTorch reference outputs of an exported model, for `rrwkv-trt compare` and `polygraphy run` (torch side).

    python -m rrwkv_trt.reference.writer CHECKPOINT MODEL [--steps K] [--prompt TEXT | --prompt-len N]

Writes MODEL/reference/ (layout: core/reference_format.py): the checkpoint's PyTorch model prefills a fixed prompt
in one call (sequence form), then takes K greedy decode steps (step form). Iteration k's feed is decode token k with
PyTorch's own state after iteration k-1, so each iteration can be compared on its own (Polygraphy's comparator
treats iterations independently). The runtime reads these files without torch; this module is the only producer.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from rrwkv_trt.core import reference_format as fmt
from rrwkv_trt.runtime.reference_files import write_folder
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import file_sha256, model_sha256
from rrwkv_trt.core.names import INPUT_IDS, LOGITS, MODEL_FILE
from rrwkv_trt.core.state import StateSpec
from rrwkv_trt.runtime.state import State, allocate_state

from .torch_session import exported_model_info, session_for_export

DEFAULT_STEPS = 24
DEFAULT_PROMPT_LEN = 40  # crosses two medium windows at the default s = 16; the steps close a third
PROMPT_SEED = 0


def default_prompt(vocab_size: int, length: int = DEFAULT_PROMPT_LEN) -> list[int]:
    """A fixed, seeded prompt of `length` token ids (the same on every machine)."""
    return np.random.default_rng(PROMPT_SEED).integers(0, vocab_size, length).tolist()


def write_reference(checkpoint: str | Path, model_dir: str | Path, prompt_ids: list[int] | None = None,
                    steps: int = DEFAULT_STEPS, prompt_len: int = DEFAULT_PROMPT_LEN) -> Path:
    """Run the checkpoint in PyTorch and write MODEL/reference/ (replacing an older one).

    Args:
        checkpoint: what `rrwkv-trt export` was given for MODEL.
        model_dir: an export folder (model.onnx with rrwkv metadata).
        prompt_ids: [T] token ids; None is `default_prompt(vocab_size, prompt_len)`.
        steps: K decode steps after the prefill (K + 1 iterations in all).
        prompt_len: length of the default prompt.
    Returns:
        the reference folder.
    """
    if steps < 0 or prompt_len < 1:
        raise UserError(f"steps must be >= 0 and the prompt length >= 1, got {steps} and {prompt_len}")
    model_dir = Path(model_dir)
    model_path = model_dir / MODEL_FILE
    if not model_path.is_file():
        raise UserError(f"{model_path} not found; export the checkpoint first: `rrwkv-trt export {checkpoint} "
                        f"-o {model_dir}`")
    info, logits_from = exported_model_info(model_path)
    session = session_for_export(checkpoint, model_path, info)
    prompt_ids = default_prompt(session.vocab_size, prompt_len) if prompt_ids is None else list(prompt_ids)
    if not prompt_ids or min(prompt_ids) < 0 or max(prompt_ids) >= session.vocab_size:
        raise UserError(f"prompt ids must be non-empty and in [0, {session.vocab_size})")

    spec = session.spec
    feeds, outputs, decode_ids = [], [], []
    state = allocate_state(spec, 1)
    ids = np.asarray([prompt_ids], dtype=np.int64)  # [1, T]
    extra = fmt.extra_feeds(logits_from)  # every position's logits: what outputs.json holds
    logits, new_state = session.run(ids, state)
    feeds.append({INPUT_IDS: ids, **extra, **state})
    outputs.append(_outputs(spec, logits, new_state))
    session.start_decode(new_state)
    for _ in range(steps):
        token = int(logits[0, -1].argmax())
        decode_ids.append(token)
        feeds.append({INPUT_IDS: np.array([[token]], np.int64), **extra, **session.decode_state()})
        logits = session.step(np.array([token]))[:, None, :]  # [1, 1, V], as the ONNX graph returns
        outputs.append(_outputs(spec, logits, session.decode_state()))

    manifest = {
        "producer": f"pytorch {torch.__version__} (rrwkv_trt.reference.writer)",
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(session.source),
        "model_sha256": model_sha256(model_path),
        "config": info.config.to_dict(),
        "state_spec": spec.to_dict(),
        "precision": info.precision,
        "logits_from": logits_from,
        "prompt_ids": prompt_ids,
        "decode_ids": decode_ids,
    }
    return write_folder(model_dir, manifest, feeds, outputs)


def _outputs(spec: StateSpec, logits: np.ndarray, state: State) -> dict[str, np.ndarray]:
    out = {LOGITS: np.ascontiguousarray(logits, dtype=np.float32)}
    out.update({t.output_name: state[t.input_name] for t in spec.tensors()})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rrwkv_trt.reference.writer",
                                description="PyTorch reference outputs for `rrwkv-trt compare` and `polygraphy run`")
    p.add_argument("checkpoint", help="the checkpoint MODEL was exported from")
    p.add_argument("model", metavar="MODEL", help="export folder; the reference goes to MODEL/reference/")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"decode steps [default: {DEFAULT_STEPS}]")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--prompt", default=None, help="prompt text (needs MODEL/tokenizer.json)")
    group.add_argument("--prompt-len", type=int, default=DEFAULT_PROMPT_LEN,
                       help=f"length of the fixed seeded prompt [default: {DEFAULT_PROMPT_LEN}]")
    args = p.parse_args(argv)
    try:
        prompt_ids = None
        if args.prompt is not None:
            from rrwkv_trt.runtime.tokenizer import Tokenizer
            prompt_ids = Tokenizer.from_dir(args.model).encode(args.prompt)
        folder = write_reference(args.checkpoint, args.model, prompt_ids, args.steps, args.prompt_len)
    except UserError as err:  # as the rrwkv-trt CLI does: one line, exit code 2
        message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return 2
    manifest = json.loads((folder / fmt.MANIFEST_FILE).read_text())
    print(f"wrote {folder}: PyTorch prefill of {len(manifest['prompt_ids'])} tokens + {args.steps} decode steps",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
