"""PyTorch reference outputs of an exported model, for `rrwkv-trt compare` and `polygraphy run` (torch side).

    python -m rrwkv_trt.export.reference CHECKPOINT OUT_DIR [--steps K] [--prompt TEXT | --prompt-len N]

Writes OUT_DIR/reference/ (layout: runtime/compare.py): the checkpoint's PyTorch model prefills a fixed prompt in
one call (sequence form), then takes K greedy decode steps (step form). Iteration k's feed is decode token k with
PyTorch's own state after iteration k-1, so each iteration can be compared on its own (Polygraphy's comparator
treats iterations independently). The runtime reads these files without torch; this module is the only producer.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from rrwkv_trt.runtime import compare as cmp
from rrwkv_trt.core.state import StateSpec
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import file_sha256, model_sha256
from rrwkv_trt.runtime.state import State, allocate_state

from .checkpoint import load_checkpoint
from .families import build_model
from .precision import PRECISIONS, activation_dtype

DEFAULT_STEPS = 24
DEFAULT_PROMPT_LEN = 40  # crosses two medium windows at the default s = 16; the steps close a third
PROMPT_SEED = 0


class TorchSession:
    """A checkpoint's PyTorch model behind the runtime's session interface (run / start_decode / step).

    Prefill runs the sequence form, `step` the step form; state is keyed by state_in.* names, as in OrtSession.
    The model always computes in fp32 (it is the reference); `precision` only sets the state spec, so that an fp16
    export's activation-dtype slots (att_xx, ffn_xx) are read and returned as float16.
    """

    def __init__(self, checkpoint: str | Path, precision: str = "fp32") -> None:
        ckpt = load_checkpoint(checkpoint)
        self.config = ckpt.config
        self.spec: StateSpec = ckpt.config.state_spec(activation_dtype(precision))
        self.vocab_size = ckpt.config.vocab_size
        self.model = build_model(ckpt.config, ckpt.state_dict)
        self.source = ckpt.source
        self._state: dict[str, torch.Tensor] | None = None

    def __enter__(self) -> TorchSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._state = None

    def initial_state(self, batch: int = 1) -> State:
        return allocate_state(self.spec, batch)

    @torch.no_grad()
    def run(self, input_ids: np.ndarray, state: State | None = None,
            last_only: bool = False) -> tuple[np.ndarray, State]:
        """input_ids [B, T] -> logits [B, T, V] ([B, 1, V] with last_only) and the new state (numpy, state_in.*
        names)."""
        ids = np.asarray(input_ids, dtype=np.int64)
        state = allocate_state(self.spec, ids.shape[0]) if state is None else state
        logits, new = self.model(torch.from_numpy(ids), self._to_torch(state))
        return (logits[:, -1:] if last_only else logits).numpy(), self._to_numpy(new)

    def start_decode(self, state: State) -> None:
        self._state = self._to_torch(state)

    @torch.no_grad()
    def step(self, token_ids: np.ndarray | int) -> np.ndarray:
        """token_ids [B] -> logits [B, V]; advances the decode state."""
        if self._state is None:
            raise RuntimeError("step() before start_decode(state)")
        ids = torch.from_numpy(np.asarray(token_ids, dtype=np.int64).reshape(-1))
        logits, self._state = self.model.step(ids, self._state)
        return logits.numpy()

    def decode_state(self) -> State:
        if self._state is None:
            raise RuntimeError("decode_state() before start_decode(state)")
        return self._to_numpy(self._state)

    def _to_torch(self, state: State) -> dict[str, torch.Tensor]:
        return {t.input_name.removeprefix("state_in."): torch.from_numpy(np.array(state[t.input_name]))
                for t in self.spec.tensors()}

    def _to_numpy(self, state: dict[str, torch.Tensor]) -> State:
        return {t.input_name: state[t.input_name.removeprefix("state_in.")].numpy().astype(t.slot.dtype)
                for t in self.spec.tensors()}


def _model_info(model_path: Path):
    """(ModelInfo, whether the graph has the logits_from input) of an exported model."""
    import onnx

    from rrwkv_trt.core.metadata import from_metadata

    proto = onnx.load(str(model_path), load_external_data=False)
    info = from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(model_path))
    return info, any(i.name == cmp.LOGITS_FROM for i in proto.graph.input)


def default_prompt(vocab_size: int, length: int = DEFAULT_PROMPT_LEN) -> list[int]:
    """A fixed, seeded prompt of `length` token ids (the same on every machine)."""
    return np.random.default_rng(PROMPT_SEED).integers(0, vocab_size, length).tolist()


def write_reference(checkpoint: str | Path, out_dir: str | Path, prompt_ids: list[int] | None = None,
                    steps: int = DEFAULT_STEPS, prompt_len: int = DEFAULT_PROMPT_LEN) -> Path:
    """Run the checkpoint in PyTorch and write OUT_DIR/reference/ (replacing an older one).

    Args:
        checkpoint: what `rrwkv-trt export` was given for OUT_DIR.
        out_dir: an export folder (model.onnx with rrwkv metadata).
        prompt_ids: [T] token ids; None is `default_prompt(vocab_size, prompt_len)`.
        steps: K decode steps after the prefill (K + 1 iterations in all).
        prompt_len: length of the default prompt.
    Returns:
        the reference folder.
    """
    try:
        from polygraphy.comparator import IterationResult, RunResults
        from polygraphy.json import save_json
        from polygraphy.logger import G_LOGGER
    except ImportError as err:
        raise UserError(f"writing a reference needs polygraphy ({err}); pip install 'rrwkv-trt[dev]'") from None
    if steps < 0 or prompt_len < 1:
        raise UserError(f"steps must be >= 0 and the prompt length >= 1, got {steps} and {prompt_len}")
    out_dir = Path(out_dir)
    model_path = out_dir / cmp.MODEL_FILE
    if not model_path.is_file():
        raise UserError(f"{model_path} not found; export the checkpoint first: `rrwkv-trt export {checkpoint} "
                        f"-o {out_dir}`")
    info, logits_from = _model_info(model_path)
    if info.precision not in PRECISIONS:
        raise UserError(f"{model_path} has precision {info.precision!r}; this rrwkv-trt writes references for "
                        f"{list(PRECISIONS)}")
    session = TorchSession(checkpoint, info.precision)
    if session.config != info.config or session.spec != info.state:
        raise UserError(f"{model_path} was exported from a different model ({info.config.to_dict()}) than "
                        f"{checkpoint} ({session.config.to_dict()}); re-export with `rrwkv-trt export {checkpoint} "
                        f"-o {out_dir}`")
    prompt_ids = default_prompt(session.vocab_size, prompt_len) if prompt_ids is None else list(prompt_ids)
    if not prompt_ids or min(prompt_ids) < 0 or max(prompt_ids) >= session.vocab_size:
        raise UserError(f"prompt ids must be non-empty and in [0, {session.vocab_size})")

    spec = session.spec
    feeds, outputs, decode_ids = [], [], []
    state = allocate_state(spec, 1)
    ids = np.asarray([prompt_ids], dtype=np.int64)  # [1, T]
    extra = cmp.extra_feeds(logits_from)  # every position's logits: what outputs.json holds
    logits, new_state = session.run(ids, state)
    feeds.append({cmp.INPUT_IDS: ids, **extra, **state})
    outputs.append(_outputs(spec, logits, new_state))
    session.start_decode(new_state)
    for _ in range(steps):
        token = int(logits[0, -1].argmax())
        decode_ids.append(token)
        feeds.append({cmp.INPUT_IDS: np.array([[token]], np.int64), **extra, **session.decode_state()})
        logits = session.step(np.array([token]))[:, None, :]  # [1, 1, V], as the ONNX graph returns
        outputs.append(_outputs(spec, logits, session.decode_state()))

    manifest = {
        "format_version": cmp.REFERENCE_FORMAT_VERSION,
        "producer": f"pytorch {torch.__version__} (rrwkv_trt.export.reference)",
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
    results = RunResults()
    results.append((cmp.REFERENCE_RUNNER, [IterationResult(outputs=o, runner_name=cmp.REFERENCE_RUNNER)
                                           for o in outputs]))
    final = out_dir / cmp.REFERENCE_DIR
    tmp = Path(tempfile.mkdtemp(prefix=f".{cmp.REFERENCE_DIR}.", dir=out_dir))
    try:
        tmp.chmod(0o755)
        with G_LOGGER.verbosity(G_LOGGER.WARNING):  # no "Saving ..." lines
            save_json(feeds, str(tmp / cmp.INPUTS_FILE), description="rrwkv reference inputs")
            results.save(str(tmp / cmp.OUTPUTS_FILE))
        (tmp / cmp.LOADER_FILE).write_text(cmp.LOADER_SOURCE)
        (tmp / cmp.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")  # last: marks it complete
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _outputs(spec: StateSpec, logits: np.ndarray, state: State) -> dict[str, np.ndarray]:
    out = {cmp.LOGITS: np.ascontiguousarray(logits, dtype=np.float32)}
    out.update({t.output_name: state[t.input_name] for t in spec.tensors()})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rrwkv_trt.export.reference",
                                description="PyTorch reference outputs for `rrwkv-trt compare` and `polygraphy run`")
    p.add_argument("checkpoint", help="the checkpoint OUT_DIR was exported from")
    p.add_argument("out_dir", help="export folder; the reference goes to OUT_DIR/reference/")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"decode steps [default: {DEFAULT_STEPS}]")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--prompt", default=None, help="prompt text (needs OUT_DIR/tokenizer.json)")
    group.add_argument("--prompt-len", type=int, default=DEFAULT_PROMPT_LEN,
                       help=f"length of the fixed seeded prompt [default: {DEFAULT_PROMPT_LEN}]")
    args = p.parse_args(argv)
    try:
        prompt_ids = None
        if args.prompt is not None:
            from rrwkv_trt.runtime.tokenizer import Tokenizer
            prompt_ids = Tokenizer.from_dir(args.out_dir).encode(args.prompt)
        folder = write_reference(args.checkpoint, args.out_dir, prompt_ids, args.steps, args.prompt_len)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    manifest = json.loads((folder / cmp.MANIFEST_FILE).read_text())
    print(f"wrote {folder}: PyTorch prefill of {len(manifest['prompt_ids'])} tokens + {args.steps} decode steps",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
