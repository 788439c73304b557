"""Training the shipped model, models/rrwkv-pystdlib (needs torch; builds on export/'s models and ops).

train.py   `python -m rrwkv_trt.training.train`: RRWKV-R1 on the Python standard library's source, byte-level
"""
