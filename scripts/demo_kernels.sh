#!/usr/bin/env bash
# `make demo`'s first step: build the fused CPU kernels (build/librrwkv_ort_ops.so, `plugins/build.sh rrwkv_ort_ops`:
# a C++ compiler and CMake, no nvcc or TensorRT) so that the demo runs them. Where that is impossible (no compiler, no
# CMake, or the build fails: no network for the ONNX Runtime headers, say) it says which and exits 0: the demo then
# runs the models' function bodies, as OrtSession's warning repeats. A rebuild with nothing changed takes a second.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fallback() {
  echo "make demo: $1; running the function bodies (slower)" >&2
  exit 0
}

compiler="${CXX:-}"
if [[ -z "$compiler" ]]; then
  for candidate in c++ g++ clang++; do
    if command -v "$candidate" > /dev/null; then
      compiler="$candidate"
      break
    fi
  done
fi
if [[ -z "$compiler" ]] || ! command -v "$compiler" > /dev/null; then
  fallback "no C++ compiler found (c++, g++, clang++ or \$CXX), so librrwkv_ort_ops.so cannot be built"
fi
if ! command -v cmake > /dev/null; then
  fallback "cmake not found (3.24 or later), so librrwkv_ort_ops.so cannot be built"
fi
if ! bash plugins/build.sh rrwkv_ort_ops; then
  fallback "building librrwkv_ort_ops.so failed (its output is above)"
fi
