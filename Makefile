# rrwkv-trt: `make demo` and `make test` do all set-up on a fresh machine (Python 3.10+, pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  ?= models/rrwkv-pystdlib
DEMO   := build/demo
PROMPT ?= import 
SERVE  := build/serve
# The [serve] extra's pins (pyproject.toml); tritonclient[grpc,http]'s dependencies but protobuf (toolchain.md §12)
TRITON_WHEELS      := nvidia-pytriton==0.7.0 tritonclient==2.73.0
TRITON_CLIENT_DEPS := "grpcio>=1.81.1" "geventhttpclient>=2.3.3" "greenlet<3.4.0" "python-rapidjson>=0.9.1" \
                      "urllib3>=2.0.7" "packaging>=14.1" "ml_dtypes>=0.5"

.PHONY: demo test fuzz export plugins plugins-check bench compare long-context serve gpu-check clean

# Create the virtual environment and install the project with every extra the tests use.
# torch is pinned to 2.13.0 (the CPU build); see README "Dependencies".
# The [serve] extra's two Triton wheels go in with --no-deps (their metadata pins numpy<2 and protobuf<7, which would
# downgrade what torch and onnx run on; the server binary brings its own libraries), then the client's own
# dependencies: docs/toolchain.md §12.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[export,ort,dev]"
	$(BIN)/pip install --quiet --no-deps $(TRITON_WHEELS)
	$(BIN)/pip install --quiet $(TRITON_CLIENT_DEPS)
	touch $(STAMP)

# Export the shipped model (unless $(DEMO)/model.onnx is newer than $(MODEL)), build the fused CPU kernels where a C++
# compiler and CMake are (otherwise say why: the function bodies run), decode a prompt on ONNX Runtime, report
# ONNX-vs-PyTorch logit error.
demo: $(DEMO)/model.onnx
	bash scripts/demo_kernels.sh
	$(BIN)/rrwkv-trt run $(DEMO) --prompt "$(PROMPT)" --max-new-tokens 200
	$(BIN)/python -m rrwkv_trt.reference.verify $(MODEL) $(DEMO) --prompt "$(PROMPT)" --steps 64

# Export the shipped model to $(DEMO) (model.onnx, config.json, tokenizer.json).
export: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/rrwkv-trt export $(MODEL) -o $(DEMO)

# Build the ONNX Runtime custom-op library (build/librrwkv_ort_ops.so) and, where nvcc and TensorRT
# headers are available (fetched into build/ otherwise), the two TensorRT plugin libraries.
plugins: $(STAMP)
	bash plugins/build.sh

# Compile-only check of the CUDA kernels and plugin sources for sm_80, sm_87 and sm_90, warnings as errors.
plugins-check: $(STAMP)
	bash plugins/compile_check.sh

# Check the import-linter layer contracts (pyproject.toml), then run the whole test suite on the CPU
# (GPU/TensorRT tests skip with their reason).
test: $(STAMP) plugins plugins-check
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -rs

# The property-based tests (marker fuzz) with ten times the examples of `make test`, new ones each run, and
# hypothesis's statistics per test (cases tried, outcomes).
fuzz: $(STAMP) plugins
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -m fuzz --hypothesis-show-statistics

# Speed on the edge CPU (README): the shipped model and a generated random 169M RWKV-4, every ORT backend and
# precision beside PyTorch eager and the rwkv package, A/B interleaved, against the machine's bandwidth and GEMM
# bounds; JSON under bench/results/, a table of ratios on stdout. Exports are cached in build/bench/. Then the
# ∞-former's decode time and state at 1k-64k tokens of context beside the plain Transformer (bench/context_scaling.py).
bench: $(STAMP) plugins
	$(BIN)/rrwkv-trt bench --reps 5 --threads 2
	$(BIN)/python -m rrwkv_trt.bench.context_scaling --threads 2

# Backends vs PyTorch on the shipped model: export it unless $(DEMO)/model.onnx is newer than $(MODEL), write the
# PyTorch reference (a prefill + 24 decode steps) to $(DEMO)/reference/, then `rrwkv-trt compare`: per-call errors of
# ORT function bodies and fused kernels, and 1000-step drift against PyTorch. Exit 1 on a mismatch
# (runtime/tolerances.json). ENGINE=engine.plan adds a TensorRT engine (GPU hosts).
compare: $(DEMO)/model.onnx plugins
	$(BIN)/python -m rrwkv_trt.reference.writer $(MODEL) $(DEMO)
	$(BIN)/rrwkv-trt compare $(DEMO) --checkpoint $(MODEL)$(if $(ENGINE), --engine $(ENGINE))

# Long context (README "Long context"): 100,000 tokens through every WKV backend (fp32, fp16; adversarial weights)
# and through the shipped model (fp32, fp16 exports; chunked prefill and decode) against float64. Exit 1 on a
# non-finite output or an op error outside plugins/*/spec.yaml long_context_*; JSON under bench/results/.
long-context: plugins
	$(BIN)/python scripts/long_context.py

# GPU hosts (README "GPU check"): plugins built for this GPU, kernel parity, fp32/fp16 engines of the shipped model and
# the random 169M, `rrwkv-trt compare --engine`, TensorRT beside ONNX Runtime decode/prefill; one JSON under
# bench/results/, within 8 minutes. Without a GPU, TensorRT or cuda-python it says why it skips and exits 0.
gpu-check: $(STAMP)
	$(BIN)/python -m rrwkv_trt.bench.gpu_check

$(DEMO)/model.onnx: $(wildcard $(MODEL) $(MODEL)/*) | $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/rrwkv-trt export $(MODEL) -o $(DEMO)

# Serve the shipped model with the pytriton wheel's tritonserver on 127.0.0.1 (HTTP 8000, gRPC 8001, metrics 8002): the
# export of $(DEMO), its model repository in $(SERVE)/repo, a client example printed once ready; Ctrl-C stops it.
serve: $(DEMO)/model.onnx plugins
	rm -rf $(SERVE)/repo
	$(BIN)/rrwkv-trt triton-repo $(DEMO) -o $(SERVE)/repo
	$(BIN)/rrwkv-trt triton-serve $(SERVE)/repo --work-dir $(SERVE)/work

# Remove build outputs and the virtual environment.
clean:
	rm -rf build $(VENV)
