#!/usr/bin/env bash
# Builds a release executable as it ships: `bash scripts/build-release.sh hearth-agent` (or hearth-operator).
# The Swift runtime is linked statically (no Swift libraries in the image), as a non-PIE executable without
# exported symbols: no load-time relocation of ~100k pointers and no dynamic symbol table, whose pages would
# otherwise count in the process's RSS (measured in BENCHMARKS.md). Output: .build/release/PRODUCT. $SWIFT, when set,
# replaces the swift driver (a wrapper that serialises builds on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
product="${1:?usage: build-release.sh PRODUCT [swift build arguments]}"
shift
"${SWIFT:-swift}" build -c release --product "$product" \
    --static-swift-stdlib -Xlinker -no-pie -Xlinker --no-export-dynamic "$@"
