#!/usr/bin/env bash
# Compile-only check of the TensorRT plugin sources (`make plugins-check`, TOOLCHAIN.md §5-6):
#   - every plugins/*/*Kernel.cu, once per architecture sm_80, sm_87, sm_90;
#   - every plugins/*/*Plugin.cpp and plugins/register*.cpp, once (host code, the same for every architecture);
# against the TensorRT headers of plugins/fetch_trt_headers.sh, warnings as errors. Objects go to
# build/compile_check/. The last line of output is a one-line summary; the exit status is non-zero on any error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/compile_check"
ARCHS=(80 87 90)
NVCC="${NVCC:-nvcc}"
cd "$ROOT"

if ! command -v "$NVCC" >/dev/null 2>&1; then
    echo "plugins-check: FAILED: nvcc not found on PATH (install the CUDA toolkit, or set NVCC=/path/to/nvcc)"
    exit 1
fi
TRT_INCLUDE="$(bash plugins/fetch_trt_headers.sh | tail -n 1)"

# Third-party headers as system headers, so -Wall -Wextra -Werror judge only our code. A standard include path is
# already searched (and -isystem /usr/include would reorder it), so it is not added again.
TRT_FLAGS=()
case "$TRT_INCLUDE" in
    /usr/include | /usr/local/include | /usr/include/*-linux-gnu) ;;
    *) TRT_FLAGS=(-isystem "$TRT_INCLUDE") ;;
esac
# -Wno-deprecated-declarations: IPluginV2 inline code in some TensorRT header versions.
FLAGS=(-std=c++17 -O2 -Werror all-warnings -Xcompiler -fPIC,-Wall,-Wextra,-Werror,-Wno-deprecated-declarations
    -I plugins "${TRT_FLAGS[@]}")

shopt -s nullglob
KERNELS=(plugins/*/*Kernel.cu)
HOST=(plugins/*/*Plugin.cpp plugins/register*.cpp)
shopt -u nullglob
if [[ ${#HOST[@]} -eq 0 ]]; then
    echo "plugins-check: FAILED: no plugins/*/*Plugin.cpp or plugins/register*.cpp found"
    exit 1
fi

rm -rf "$OUT"
mkdir -p "$OUT"
start=$SECONDS
count=0
for src in "${KERNELS[@]}"; do
    for sm in "${ARCHS[@]}"; do
        obj="$OUT/$(basename "${src%.*}")_sm$sm.o"
        "$NVCC" "${FLAGS[@]}" -gencode "arch=compute_$sm,code=sm_$sm" -c "$src" -o "$obj"
        count=$((count + 1))
    done
done
for src in "${HOST[@]}"; do
    "$NVCC" "${FLAGS[@]}" -c "$src" -o "$OUT/$(basename "${src%.*}").o"
    count=$((count + 1))
done

note=""
if [[ ${#KERNELS[@]} -eq 0 ]]; then
    note=" (no plugins/*/*Kernel.cu yet: plugin sources only)"
fi
echo "plugins-check: OK, $count objects in build/compile_check/: ${#KERNELS[@]} kernel file(s) x sm_${ARCHS[0]}/sm_${ARCHS[1]}/sm_${ARCHS[2]}, ${#HOST[@]} host file(s)$note; TensorRT headers $TRT_INCLUDE; $((SECONDS - start)) s"
