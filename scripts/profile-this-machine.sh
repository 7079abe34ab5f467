#!/usr/bin/env bash
# Sets up a fresh machine, builds the agent and profiles this machine for 10 seconds (as root: through sudo when
# needed).
# Extra arguments go to `hearth-agent profile`, e.g. --seconds 30 --output profile.pb.gz
set -euo pipefail
source "$(dirname "$0")/lib/root.sh"
hearth_require_root "$0" "$@"
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# A static Swift runtime: less to link at start-up and about 6 MiB less resident memory.
bash scripts/build-release.sh hearth-agent
exec .build/release/hearth-agent profile --seconds 10 --output flamegraph.html "$@"
