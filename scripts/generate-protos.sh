#!/usr/bin/env bash
# Regenerates the committed Swift code for the pprof schema and Pyroscope's push API:
#   Sources/HearthProfile/Generated/profile.proto -> Sources/HearthProfile/Generated/profile.pb.swift
#   Sources/HearthAgent/Generated/{push,types}.proto -> Sources/HearthAgent/Generated/{push,types}.pb.swift
#
# Needs Debian's protoc (apt-get install -y protobuf-compiler; 3.21.12 on Debian 12) and protoc-gen-swift from
# swift-protobuf 1.39.0, the version Package.swift depends on. Set PROTOC_GEN_SWIFT to an existing plugin binary,
# or let this script build one from SWIFT_PROTOBUF_REPO (default: GitHub) in a scratch directory outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."

swift_protobuf_version=1.39.0
swift_protobuf_repo="${SWIFT_PROTOBUF_REPO:-https://github.com/apple/swift-protobuf.git}"

if [[ -z "${PROTOC_GEN_SWIFT:-}" ]]; then
    scratch="${TMPDIR:-/tmp}/hearth-protoc-gen-swift-${swift_protobuf_version}"
    if [[ ! -d "$scratch" ]]; then
        git clone -q --depth 1 --branch "$swift_protobuf_version" "$swift_protobuf_repo" "$scratch"
    fi
    swift build --package-path "$scratch" -c release --product protoc-gen-swift
    PROTOC_GEN_SWIFT="$scratch/.build/release/protoc-gen-swift"
fi

# The exact generation command. Internal visibility: the generated types are an implementation detail of
# HearthProfile; UseAccessLevelOnImports keeps `import SwiftProtobuf` from leaking into the module's interface.
protoc \
    --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" \
    --proto_path=Sources/HearthProfile/Generated \
    --swift_out=Sources/HearthProfile/Generated \
    --swift_opt=Visibility=Internal \
    --swift_opt=UseAccessLevelOnImports=true \
    profile.proto
protoc \
    --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" \
    --proto_path=Sources/HearthAgent/Generated \
    --swift_out=Sources/HearthAgent/Generated \
    --swift_opt=Visibility=Internal \
    --swift_opt=UseAccessLevelOnImports=true \
    push.proto types.proto

# protoc-gen-swift already starts the file with `// swift-format-ignore-file`, so swift-format leaves it alone.
for generated in Sources/HearthProfile/Generated/profile.pb.swift Sources/HearthAgent/Generated/push.pb.swift \
    Sources/HearthAgent/Generated/types.pb.swift; do
    grep -q '^// swift-format-ignore-file' "$generated"
done
echo "generated with protoc $(protoc --version | cut -d' ' -f2) and protoc-gen-swift $("$PROTOC_GEN_SWIFT" --version | awk '{print $NF}')"
