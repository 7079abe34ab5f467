# Sourced by the scripts that need root (apt-get, eBPF). `hearth_require_root "$0" "$@"` returns at once in a
# root shell (which may have no sudo at all); otherwise it re-runs the script through sudo, keeping PATH (where
# the Swift toolchain is) and every HEARTH_* setting, or fails with a clear message when there is no sudo.
hearth_require_root() {
    local script
    script="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
    shift
    [[ $EUID -eq 0 ]] && return 0
    if command -v sudo >/dev/null 2>&1; then
        local settings=("PATH=$PATH")
        local name
        for name in $(compgen -e | grep '^HEARTH_' || true); do settings+=("$name=${!name}"); done
        echo "==> $(basename "$script") needs root: re-running it through sudo" >&2
        exec sudo env "${settings[@]}" bash "$script" "$@"
    fi
    echo "error: $(basename "$script") needs root (it installs Debian packages and loads eBPF programs);" \
        "run it as root, or install sudo" >&2
    exit 1
}
