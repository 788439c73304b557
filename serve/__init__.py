"""Serving with Triton Inference Server: the model repository `rrwkv-trt triton-repo` writes, the Python-backend
model that serves an export through the runtime's SlotPool, and the pytriton wheel's server started on the CPU.

Builds on runtime/ and core/ only; never imports torch or export/ (pyproject.toml import-linter contracts).
"""
