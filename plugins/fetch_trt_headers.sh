#!/usr/bin/env bash
# Print the TensorRT include directory on the last line of stdout (docs/toolchain.md §5), in this order:
#   1. $TENSORRT_ROOT/include when it holds NvInfer.h;
#   2. the compiler's standard include paths (a system TensorRT);
#   3. NVIDIA's TensorRT 10.14 headers from the PyPI wheel kernel-lens==2.0.1, fetched once into
#      build/trt-headers (idempotent: a second call only prints the path).
# Usage: TRT_INCLUDE=$(bash plugins/fetch_trt_headers.sh | tail -n 1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/build/trt-headers"
KL_VERSION="2.0.1"
KL_INCLUDE="$DEST/kernel_lens/include/tensorrt"

if [[ -n "${TENSORRT_ROOT:-}" && -f "$TENSORRT_ROOT/include/NvInfer.h" ]]; then
    echo "$TENSORRT_ROOT/include"
    exit 0
fi

for dir in /usr/include /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/local/include; do
    if [[ -f "$dir/NvInfer.h" ]]; then
        echo "$dir"
        exit 0
    fi
done

if [[ ! -f "$KL_INCLUDE/NvInfer.h" ]]; then
    PYTHON="${PYTHON:-}"
    if [[ -z "$PYTHON" ]]; then
        if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
    fi
    mkdir -p "$DEST"
    echo "fetch_trt_headers: no TensorRT found (TENSORRT_ROOT unset or without include/NvInfer.h);" \
         "fetching TensorRT 10.14 headers from kernel-lens==$KL_VERSION into $DEST" >&2
    if ! "$PYTHON" -m pip download --quiet --no-deps "kernel-lens==$KL_VERSION" -d "$DEST" >&2; then
        echo "fetch_trt_headers: 'pip download kernel-lens==$KL_VERSION' failed (no package index?);" \
             "set TENSORRT_ROOT to a TensorRT install instead" >&2
        exit 1
    fi
    "$PYTHON" -m zipfile -e "$DEST/kernel_lens-$KL_VERSION-py3-none-any.whl" "$DEST"
    if [[ ! -f "$KL_INCLUDE/NvInfer.h" ]]; then
        echo "fetch_trt_headers: $KL_INCLUDE/NvInfer.h missing after unpacking kernel-lens==$KL_VERSION;" \
             "set TENSORRT_ROOT to a TensorRT install instead" >&2
        exit 1
    fi
fi
echo "$KL_INCLUDE"
