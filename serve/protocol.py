"""The Triton model's request protocol: tensor names and dtypes that the repository writer, the Python-backend model
and the client share (stdlib only).

A sequence is a Triton correlation id. Its first request (sequence_start) carries the prompt in `input_ids` and,
optionally, the sampling inputs; every later request carries the ids to feed next, usually the one token the server
sampled last. Each request with ids returns the next `token` (sampled on the server; greedy unless the sequence
started with sampling inputs) and, when asked for, the `logits` of the last position. The last request carries
sequence_end; one without `input_ids` only ends the sequence.
"""
from __future__ import annotations

INPUT_IDS = "input_ids"  # int64 [1, T]: the prompt, or the T >= 1 ids to feed next
TOKEN = "token"  # int64 [1, 1]: the next token, sampled on the server
LOGITS = "logits"  # float32 [1, V]: the last position's logits (only when requested)

# The sequence batcher's control inputs (config.pbtxt control_input), which the model receives as [1, 1] tensors.
START, END, READY, CORRID = "START", "END", "READY", "CORRID"

# Optional inputs of a sequence's first request, each a [1, 1] tensor: runtime/sampler.py SamplingParams fields of
# the same names, with their Triton dtypes.
SAMPLING_INPUTS = {
    "temperature": "TYPE_FP32",
    "top_k": "TYPE_INT32",
    "top_p": "TYPE_FP32",
    "min_p": "TYPE_FP32",
    "repetition_penalty": "TYPE_FP32",
    "presence_penalty": "TYPE_FP32",
    "frequency_penalty": "TYPE_FP32",
    "penalty_decay": "TYPE_FP32",
    "seed": "TYPE_UINT64",
}

# Triton's wire dtypes (tritonclient's InferInput) of the config's TYPE_* names.
WIRE_DTYPES = {"TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_INT32": "INT32", "TYPE_INT64": "INT64",
               "TYPE_UINT64": "UINT64", "TYPE_BOOL": "BOOL"}

# The numpy dtype name of a state slot (core/state.py DTYPES) as a Triton config TYPE_*.
STATE_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64"}
