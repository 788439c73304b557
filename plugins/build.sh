#!/usr/bin/env bash
# `make plugins`: fetch headers into build/, configure and build plugins/CMakeLists.txt into build/plugins, with the
# libraries in build/: librrwkv_ort_ops.so and librrwkv_cpu_testshim.so always; librrwkv_trt_plugins.so and
# librrwkv_trt_plugins_dyn.so where nvcc and TensorRT headers (plugins/fetch_trt_headers.sh) are available.
# Idempotent; a rebuild with nothing changed takes about a second. Any real error fails the script.
# Environment: JOBS (parallel compile jobs, default 2), CMAKE_ARGS (extra cmake -D options).
# Arguments: cmake targets to build, default all. `make demo` builds rrwkv_ort_ops alone (scripts/demo_kernels.sh),
# which needs neither nvcc nor TensorRT headers, so none are fetched for it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
targets=("$@")

ort_include="$(bash plugins/fetch_ort_headers.sh | tail -n 1)"
args=(-DORT_INCLUDE_DIR="$ort_include")

if [[ ${#targets[@]} -gt 0 ]]; then
  :  # only the named targets: the TensorRT headers stay as configured before (or absent)
elif [[ -f plugins/fetch_trt_headers.sh ]]; then
  trt_include="$(bash plugins/fetch_trt_headers.sh | tail -n 1)"
  if [[ -n "$trt_include" ]]; then
    args+=(-DTENSORRT_INCLUDE_DIR="$trt_include")
  fi
else
  echo "plugins/build.sh: plugins/fetch_trt_headers.sh not present; TensorRT libraries skipped" >&2
fi
if [[ -n "${TENSORRT_ROOT:-}" ]]; then
  args+=(-DTENSORRT_ROOT="$TENSORRT_ROOT")
fi

# shellcheck disable=SC2206  # CMAKE_ARGS is a list of words on purpose
extra=(${CMAKE_ARGS:-})
cmake -S plugins -B build/plugins "${args[@]}" "${extra[@]}" > build/plugins.configure.log \
  || { cat build/plugins.configure.log >&2; echo "plugins/build.sh: cmake configure failed" >&2; exit 1; }
grep -E '^-- rrwkv:' build/plugins.configure.log >&2 || true
build_args=(-j "${JOBS:-2}")
if [[ ${#targets[@]} -gt 0 ]]; then
  build_args+=(--target "${targets[@]}")
fi
cmake --build build/plugins "${build_args[@]}"
ls -1 build/librrwkv_*.so >&2
