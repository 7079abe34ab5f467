#!/usr/bin/env bash
# Builds the release hearth-operator as it ships: the Swift runtime linked statically (no Swift libraries in the
# image), a non-PIE executable without exported symbols (no load-time relocation of ~100k pointers, whose pages
# would otherwise count in the operator's RSS). Output: .build/release/hearth-operator.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product hearth-operator \
    --static-swift-stdlib -Xlinker -no-pie -Xlinker --no-export-dynamic "$@"
