"""The `rrwkv-trt` command: the top layer, over runtime/ (never torch) and, lazily, export/ (torch)."""
