"""The torch-free core of rrwkv-trt (stdlib + numpy): what `export/` writes and `runtime/` reads.

Configs, state specs, ONNX names, metadata and file formats, the family and op registries. Nothing here imports
torch, onnx, onnxruntime or tensorrt; `export/` and `runtime/` both build on it (docs/conventions.md §2).
"""
