#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole test suite. The eBPF tests need root; with
# HEARTH_REQUIRE_BPF=1 (set here) they fail instead of skipping when eBPF is unusable.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export HEARTH_REQUIRE_BPF="${HEARTH_REQUIRE_BPF:-1}"
swift test
