#!/usr/bin/env bash
# Fetch the ONNX Runtime C/C++ headers (Debian trixie libonnxruntime-dev, C API 21) into build/ort through a
# private apt configuration: the system's apt sources and lists stay untouched, nothing is installed.
# Recipe: docs/toolchain.md §4. Idempotent: does nothing when the headers are present.
# Prints the include directory on stdout; progress goes to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
INC="$BUILD/ort/usr/include/onnxruntime"
if [[ -f "$INC/onnxruntime_lite_custom_op.h" && -f "$INC/onnxruntime_cxx_api.h" ]]; then
  echo "$INC"
  exit 0
fi
A="$BUILD/apt"
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$BUILD/ort"
sources=/etc/apt/sources.list.d/debian.sources
mirror=""
if [[ -f "$sources" ]]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources")
fi
if [[ -z "$mirror" ]]; then
  echo "fetch_ort_headers: no Debian mirror found in $sources; cannot fetch libonnxruntime-dev" >&2
  exit 1
fi
echo "deb $mirror trixie main" > "$A/sources.list"
APT_OPTS=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$A/lists"
          -o "Dir::Cache=$A/cache")
echo "fetch_ort_headers: apt-get update (trixie index from $mirror)" >&2
apt-get "${APT_OPTS[@]}" update >&2
rm -f "$BUILD"/libonnxruntime-dev_*.deb
(cd "$BUILD" && apt-get "${APT_OPTS[@]}" download libonnxruntime-dev >&2)
dpkg -x "$BUILD"/libonnxruntime-dev_*.deb "$BUILD/ort"
if [[ ! -f "$INC/onnxruntime_lite_custom_op.h" ]]; then
  echo "fetch_ort_headers: $INC/onnxruntime_lite_custom_op.h missing after unpacking the .deb" >&2
  exit 1
fi
echo "fetch_ort_headers: $(grep -m1 'define ORT_API_VERSION' "$INC/onnxruntime_c_api.h")" >&2
echo "$INC"
