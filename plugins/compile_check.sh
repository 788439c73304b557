#!/usr/bin/env bash
# Compile-only check of the TensorRT plugin sources (`make plugins-check`, docs/toolchain.md §5-6):
#   - every op's CUDA_SOURCES, once per architecture sm_80, sm_87, sm_90;
#   - every op's PLUGIN_SOURCES and plugins/register*.cpp, once (host code, the same for every architecture);
# against the TensorRT headers of plugins/fetch_trt_headers.sh, warnings as errors. The op sources come from the op
# folders (plugins/<folder>/op.cmake), read by plugins/rrwkvOps.cmake, which also generates the registration lists
# that register*.cpp include. Objects go to build/compile_check/. The last line of output is a one-line summary;
# the exit status is non-zero on any error.
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
rm -rf "$OUT"
mkdir -p "$OUT"
GENERATED="$OUT/generated"
if ! cmake -DRRWKV_OPS_OUT="$GENERATED" -P plugins/rrwkvOps.cmake; then
    echo "plugins-check: FAILED: plugins/rrwkvOps.cmake could not read the op folders"
    exit 1
fi
# rrwkvOps.txt: "<role> <op> <path>" lines (plugins/rrwkvOps.cmake).
mapfile -t KERNELS < <(awk '$1 == "cuda" { print $3 }' "$GENERATED/rrwkvOps.txt")
mapfile -t HOST < <(awk '$1 == "plugin" { print $3 }' "$GENERATED/rrwkvOps.txt")
HOST+=(plugins/registerTrtStatic.cpp plugins/registerTrtDynamic.cpp)

# -Wno-deprecated-declarations: IPluginV2 inline code in some TensorRT header versions.
FLAGS=(-std=c++17 -O2 -Werror all-warnings -Xcompiler -fPIC,-Wall,-Wextra,-Werror,-Wno-deprecated-declarations
    -I plugins -I "$GENERATED" "${TRT_FLAGS[@]}")
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
    note=" (no op declares CUDA_SOURCES: plugin sources only)"
fi
echo "plugins-check: OK, $count objects in build/compile_check/: ${#KERNELS[@]} kernel file(s) x sm_${ARCHS[0]}/sm_${ARCHS[1]}/sm_${ARCHS[2]}, ${#HOST[@]} host file(s)$note; TensorRT headers $TRT_INCLUDE; $((SECONDS - start)) s"
