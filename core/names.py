"""The names an exported model's files and graph use; export writes them, the runtime reads them (stdlib only).

docs/onnx.md describes the I/O they name.
"""
from __future__ import annotations

MODEL_FILE = "model.onnx"  # what `rrwkv-trt export` writes into its output folder
CONFIG_FILE = "config.json"  # the config dict beside it (the same JSON as metadata_props["rrwkv.config"])
TOKENIZER_FILE = "tokenizer.json"  # a Hugging Face `tokenizers` file (byte-level, GPT-NeoX 20B, ...)
# The RWKV "World" vocabulary, under the name the rwkv package and ChatRWKV give it; a model folder holds one
# tokenizer file, and its name says which kind it is (runtime/tokenizer.py: Tokenizer.from_dir)
WORLD_VOCAB_FILE = "rwkv_vocab_v20230424.txt"
EXTERNAL_DATA_SUFFIX = ".data"  # model.onnx -> model.onnx.data, written by export for large models

INPUT_IDS = "input_ids"  # int64 [batch, seq]
LOGITS = "logits"  # [batch, seq - logits_from, vocab], float32 at every precision
# int64 [1]: logits are computed for positions logits_from .. seq-1 only (0: all; seq-1: the last, what a prefill
# needs). Exports since 2026-12 have it; the runtime feeds it when the graph has it (older exports do not).
LOGITS_FROM = "logits_from"

STATE_IN = "state_in"  # state inputs: state_in.{layer}.{slot} and, for sequence-level slots, state_in.{slot}
STATE_OUT = "state_out"  # the matching outputs
