"""A client of the Python-backend model (serve/protocol.py) over tritonclient's gRPC API (imported lazily: the
[serve] extra)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .protocol import INPUT_IDS, LOGITS, SAMPLING_INPUTS, TOKEN, WIRE_DTYPES


class SequenceClient:
    """One sequence: `start(prompt)`, then `step(token)` per token, then `end()`; each returns the next token.

    Args:
        client: a tritonclient.grpc.InferenceServerClient (one per thread: calls block).
        sequence_id: the correlation id, unique among live sequences.
        model: the model's name in the repository.
    """

    def __init__(self, client, sequence_id: int, model: str = "rrwkv") -> None:
        self.client, self.sequence_id, self.model = client, sequence_id, model
        self.logits: np.ndarray | None = None  # [V] of the last request made with logits=True

    def start(self, prompt_ids: Sequence[int], logits: bool = False, **sampling) -> int:
        """Feed the prompt; `sampling`: SamplingParams fields (temperature=0.8, seed=1, ...). Returns the token."""
        extra = [_scalar_input(name, value) for name, value in sampling.items()]
        return self._infer(prompt_ids, start=True, logits=logits, extra=extra)

    def step(self, ids: int | Sequence[int], logits: bool = False, end: bool = False) -> int:
        """Feed one token (a batched step) or several (a prefill); `end` ends the sequence with this request."""
        return self._infer([ids] if isinstance(ids, (int, np.integer)) else ids, end=end, logits=logits)

    def end(self) -> None:
        """End the sequence without feeding anything (frees its slot)."""
        self.client.infer(self.model, [], sequence_id=self.sequence_id, sequence_end=True)

    def _infer(self, ids: Sequence[int], start: bool = False, end: bool = False, logits: bool = False,
               extra: list | None = None) -> int:
        import tritonclient.grpc as grpc

        tensor = grpc.InferInput(INPUT_IDS, [1, len(ids)], "INT64")
        tensor.set_data_from_numpy(np.asarray(ids, dtype=np.int64).reshape(1, -1))
        outputs = [grpc.InferRequestedOutput(name) for name in ((TOKEN, LOGITS) if logits else (TOKEN,))]
        result = self.client.infer(self.model, [tensor, *(extra or [])], outputs=outputs,
                                   sequence_id=self.sequence_id, sequence_start=start, sequence_end=end)
        if logits:
            self.logits = result.as_numpy(LOGITS)[0]
        return int(result.as_numpy(TOKEN)[0, 0])


def _scalar_input(name: str, value: float | int):
    import tritonclient.grpc as grpc

    if name not in SAMPLING_INPUTS:
        raise ValueError(f"{name!r} is not a sampling input; the model takes {sorted(SAMPLING_INPUTS)}")
    wire = WIRE_DTYPES[SAMPLING_INPUTS[name]]
    tensor = grpc.InferInput(name, [1, 1], wire)
    tensor.set_data_from_numpy(np.array([[value]], dtype=_NUMPY[wire]))
    return tensor


_NUMPY = {"FP32": np.float32, "INT32": np.int32, "UINT64": np.uint64}


# What `rrwkv-trt triton-serve` prints and README "Serving with Triton" shows: plain tritonclient, no rrwkv-trt code
# on the wire (the tokenizer is the model folder's own).
EXAMPLE = '''import numpy as np
import tritonclient.grpc as grpcclient
from rrwkv_trt.runtime.tokenizer import Tokenizer

tokenizer = Tokenizer.from_dir("{tokenizer_dir}")
client = grpcclient.InferenceServerClient("{url}")


def infer(ids, start=False, end=False):
    """Feed ids to sequence 42; returns the next token (greedy: the sequence started without sampling inputs)."""
    tensor = grpcclient.InferInput("input_ids", [1, len(ids)], "INT64")
    tensor.set_data_from_numpy(np.array([ids], dtype=np.int64))
    result = client.infer("{model}", [tensor], sequence_id=42, sequence_start=start, sequence_end=end,
                          outputs=[grpcclient.InferRequestedOutput("token")])
    return int(result.as_numpy("token")[0, 0])


tokens = [infer(tokenizer.encode("{prompt}"), start=True)]  # the prompt: one prefill
while len(tokens) < 32:
    tokens.append(infer([tokens[-1]]))  # one token: batched with the other live sequences
client.infer("{model}", [], sequence_id=42, sequence_end=True)  # frees the sequence's slot
print(tokenizer.decode(tokens))
'''


def client_example(url: str, model: str, tokenizer_dir: str, prompt: str = "import ") -> str:
    """EXAMPLE for a server at `url` (host:grpc-port)."""
    return EXAMPLE.format(url=url, model=model, tokenizer_dir=tokenizer_dir, prompt=prompt)
