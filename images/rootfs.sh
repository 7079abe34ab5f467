#!/usr/bin/env bash
# Stages the root file system of a Hearth image for one binary: the binary (debug info stripped, the symbol table
# kept so Hearth's own frames are named in profiles), every shared library ldd resolves plus the loader, CA
# certificates (HTTPS to Pyroscope, Grafana, the API server) and /etc files naming a non-root user. Both ways of
# building the images run it: the Containerfiles' Swift builder stage, and scripts/test-packaging.sh on binaries
# built on the host.
# usage: bash images/rootfs.sh BINARY DEST
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 BINARY DEST" >&2; exit 2; }
binary=$1
dest=$2
[[ -x $binary ]] || { echo "$binary: not an executable" >&2; exit 1; }

rm -rf "$dest"
mkdir -p "$dest/usr/local/bin" "$dest/etc/ssl/certs" "$dest/tmp"
chmod 1777 "$dest/tmp"
strip --strip-debug -o "$dest/usr/local/bin/$(basename "$binary")" "$binary"

libraries=$(ldd "$binary")
if grep -q 'not found' <<<"$libraries"; then
    echo "$binary: unresolved libraries:" >&2
    grep 'not found' <<<"$libraries" >&2
    exit 1
fi
# "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" and the loader "/lib64/ld-linux-x86-64.so.2 (0x...)":
# each is copied (symlinks resolved) to the path the loader looks it up at.
awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$libraries" | while read -r library; do
    mkdir -p "$dest$(dirname "$library")"
    cp -L "$library" "$dest$library"
done

cp -L /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$dest/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$dest/etc/group"
# glibc's default without this file asks DNS before /etc/hosts.
printf 'hosts: files dns\n' >"$dest/etc/nsswitch.conf"
