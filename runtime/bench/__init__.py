"""`rrwkv-trt bench`: decode and prefill speed of every backend and precision against the machine's bounds.

machine.py  the bounds: read bandwidth, GEMV and GEMM throughput
worker.py   one backend per process, driven over a pipe (its own peak RSS; A/B interleaving)
accuracy.py greedy agreement and logit error of weight-only exports against fp32
suite.py    the coordinator: prepare models, run interleaved repetitions, JSON and the table of ratios
"""
