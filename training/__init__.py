"""Training the shipped models, models/rrwkv-pystdlib and models/hgrn2-pystdlib (needs torch; builds on export/'s
models and ops).

corpus.py        the Python standard library's source, byte-level: split, batches, held-out bits per byte
loop.py          the shared loop: command line, AdamW on a wall-clock budget, periodic evaluation and checkpoint,
                 the output folder written atomically
train.py         `python -m rrwkv_trt.training.train`: RRWKV-R1
train_hgrn2.py   `python -m rrwkv_trt.training.train_hgrn2`: HGRN2, written as an fla folder
"""
