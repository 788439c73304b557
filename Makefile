# rrwkv-trt: `make demo` and `make test` do all set-up on a fresh machine (Python 3.10+, pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  ?= models/rrwkv-pystdlib
DEMO   := build/demo
PROMPT ?= def 

.PHONY: demo test export plugins plugins-check bench clean

# Create the virtual environment and install the project with every extra the tests use.
# torch is pinned to 2.13.0 (the CPU build); see README "Dependencies".
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[export,ort,dev]"
	touch $(STAMP)

# Export the shipped model, decode a prompt on ONNX Runtime, report ONNX-vs-PyTorch logit error.
demo: export
	$(BIN)/rrwkv-trt run $(DEMO) --prompt "$(PROMPT)" --max-new-tokens 200
	$(BIN)/python -m rrwkv_trt.export.verify $(MODEL) $(DEMO) --prompt "$(PROMPT)" --steps 64

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

# Run the whole test suite on the CPU (GPU/TensorRT tests skip with their reason).
test: $(STAMP) plugins plugins-check
	$(BIN)/python -m pytest -q -rs

# ONNX Runtime: fused rrwkv CPU kernels vs function bodies on the shipped model, A/B interleaved;
# JSON under bench/results/.
bench: export plugins
	$(BIN)/python -m rrwkv_trt.runtime.bench $(DEMO) --prefill 512 --decode 128 --reps 5 --threads 2

# Remove build outputs and the virtual environment.
clean:
	rm -rf build $(VENV)
