"""`rrwkv-trt bench`: decode and prefill speed of every backend and precision against the machine's bounds.

The coordinator (suite.py, report.py, plan.py) and the runtime's workers are torch-free; exports.py and
baselines.py need torch and run only in subprocesses. Results go to bench/results/ (dated JSON).
plan.py       what a run measures: its Settings and its Variants (backend x precision)
machine.py    the bounds: read bandwidth, GEMV and GEMM throughput
worker.py     one backend per process, driven over a pipe (its own peak RSS; A/B interleaving)
idle.py       waiting for a worker's spinning threads before the next measurement
accuracy.py   greedy agreement and logit error of weight-only exports against fp32
exports.py    `python -m rrwkv_trt.bench.exports`: the exports every model is measured at, and their manifest
baselines.py  the PyTorch eager and rwkv-package baselines (worker factories)
suite.py      the coordinator: prepare models, run interleaved repetitions, JSON and the table of ratios
report.py     samples -> medians, ratios, fractions of the bounds, targets
"""
