#!/usr/bin/env bash
# Sets up a fresh machine, builds the agent and profiles this machine for 10 seconds (needs root).
# Extra arguments go to `hearth-agent profile`, e.g. --seconds 30 --output profile.pb.gz
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product hearth-agent
exec .build/release/hearth-agent profile --seconds 10 --output flamegraph.html "$@"
