"""A checkpoint's PyTorch model behind the runtime's session interface, and its check against an exported model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import PRECISIONS, ModelInfo, from_metadata
from rrwkv_trt.core.names import LOGITS_FROM
from rrwkv_trt.core.state import StateSpec
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.fingerprint import model_fingerprint
from rrwkv_trt.export.precision import activation_dtype
from rrwkv_trt.runtime.state import State, allocate_state


class TorchSession:
    """A checkpoint's PyTorch model behind the runtime's session interface (run / start_decode / step).

    Prefill runs the sequence form, `step` the step form; state is keyed by state_in.* names, as in OrtSession.
    The model always computes in fp32 (it is the reference); `precision` only sets the state spec, so that an fp16
    export's activation-dtype slots (att_xx, ffn_xx) are read and returned as float16.

    `info` carries the checkpoint's fingerprint (export/fingerprint.py), as an export's metadata does, so its states
    save and load as state files (runtime/state_file.py) interchangeably with those of the exports.
    """

    def __init__(self, checkpoint: str | Path, precision: str = "fp32") -> None:
        ckpt = load_checkpoint(checkpoint)
        self.config = ckpt.config
        self.spec: StateSpec = ckpt.config.state_spec(activation_dtype(precision))
        self.vocab_size = ckpt.config.vocab_size
        self.info = ModelInfo(ckpt.config, self.spec, precision, ckpt.transforms,
                              model_fingerprint(ckpt.config, ckpt.state_dict))
        self.model = build_model(ckpt.config, ckpt.state_dict)
        self.source = ckpt.source
        self.path = ckpt.source  # what state-file messages call the model
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
        return {t.key: torch.from_numpy(np.array(state[t.input_name]))
                for t in self.spec.tensors()}

    def _to_numpy(self, state: dict[str, torch.Tensor]) -> State:
        return {t.input_name: state[t.key].numpy().astype(t.slot.dtype)
                for t in self.spec.tensors()}


def exported_model_info(model_path: Path) -> tuple[ModelInfo, bool]:
    """(ModelInfo, whether the graph has the logits_from input) of an exported model.onnx."""
    import onnx

    proto = onnx.load(str(model_path), load_external_data=False)
    info = from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(model_path))
    return info, any(i.name == LOGITS_FROM for i in proto.graph.input)


def session_for_export(checkpoint: str | Path, model_path: Path, info: ModelInfo) -> TorchSession:
    """The TorchSession of `checkpoint` at the precision of the export `model_path` (whose metadata is `info`);
    UserError when the export is not of this checkpoint's model."""
    if info.precision not in PRECISIONS:
        raise UserError(f"{model_path} has precision {info.precision!r}; this rrwkv-trt runs PyTorch references for "
                        f"{list(PRECISIONS)}")
    session = TorchSession(checkpoint, info.precision)
    if session.config != info.config or session.spec != info.state:
        raise UserError(f"{model_path} was exported from a different model ({info.config.to_dict()}) than "
                        f"{checkpoint} ({session.config.to_dict()}); re-export with `rrwkv-trt export {checkpoint} "
                        f"-o {model_path.parent}`")
    return session
